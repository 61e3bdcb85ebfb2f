"""The inspection workflow's pages, rendered on the server (zh-CN first, ``?lang=en``):

| page | what |
|---|---|
| ``/inspections[?site_id=]`` | start an inspection of a mall; every inspection, newest first |
| ``/inspections/{id}`` | the checklist: evidence, a finding per item, notices from problems |
| ``/inspections/{id}/record`` | the printable 巡查记录 (print CSS, no script) |
| ``/inspection-results[?by=district]`` | inspections per mall or district and month |
| ``/notices[?site_id=]``, ``/notices/{id}`` | notices and every step; accept or send back |
| ``/escalations`` | overdue notices escalated to the supervisors (role supervisor) |

The buttons call the JSON API (patrol.web_inspect) from ``/static/inspect.js``.
"""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

from aiohttp import web

from patrol.auth import Officer
from patrol.clock import now_utc, parse_ts
from patrol.config import valid_site_id
from patrol.i18n import LANG_COOKIE, strings, word
from patrol.inspections import get_inspection, list_inspections, mall_names, results
from patrol.notices import get_notice, list_notices
from patrol.schedule import CST
from patrol.webbase import STATE, lang_for, lang_link, officer_of, page

e = html.escape


def _when(value: str | None, lang: str) -> str:
    """An ISO time shown in China time (the officers' clock)."""
    if not value:
        return ""
    at = parse_ts(value)
    if at is None:
        return e(value)
    return e(f"{at.astimezone(CST):%Y-%m-%d %H:%M:%S}" + (" (UTC+8)" if lang == "en" else ""))


async def _who(request: web.Request) -> Officer:
    got = await officer_of(request)
    if got is None:
        raise web.HTTPFound("/login")
    return got[0]


def _nav(t: dict[str, str], lang: str, officer: Officer, title: str) -> str:
    links = [("/", "nav_overview"), ("/inspections", "nav_inspections")]
    links += [("/inspection-results", "nav_results"), ("/notices", "nav_notices")]
    if officer.may("supervisor"):
        links.append(("/escalations", "nav_escalations"))
    nav = "".join(f'<a href="{h}">{e(t[k])}</a>' for h, k in links)
    return (
        f'<header class="noprint"><h1>{e(title)}</h1><nav>{nav}</nav>'
        f'<span id="who">{e(officer.label)}</span>{lang_link(lang)}</header>'
        f'<p id="error" role="alert" class="error"></p>'
    )


def _respond(request: web.Request, lang: str, title: str, body: str, script: bool) -> web.Response:
    resp = page(lang, title, body, "inspect.js" if script else None)
    if "lang" in request.query:
        resp.set_cookie(LANG_COOKIE, lang, samesite="Strict", path="/")
    return resp


def _table(headers: list[str], rows: list[str], table_id: str, t: dict[str, str]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = (
        "".join(rows)
        or f'<tr class="empty"><td colspan="{len(headers)}">{e(t["no_rows"])}</td></tr>'
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --- inspections -------------------------------------------------------------------------


async def page_inspections(request: web.Request) -> web.Response:
    officer = await _who(request)
    st = request.app[STATE]
    lang = lang_for(request)
    t = strings(lang)
    names = await mall_names(st.store.engine, st.registry)
    chosen = request.query.get("site_id", "")
    options = "".join(
        f'<option value="{e(s)}"{" selected" if s == chosen else ""}>'
        f"{e(n or s)} · {e(d)} · {e(s)}</option>"
        for s, (n, d) in sorted(names.items(), key=lambda kv: (kv[1][1], kv[1][0], kv[0]))
    )
    rows = []
    site = chosen if chosen in names else None
    for i in await list_inspections(st.store.engine, st.registry, site_id=site, limit=300):
        rows.append(
            f'<tr data-inspection="{e(i["inspection_id"])}" data-state="{e(i["state"])}">'
            f'<td><a href="/inspections/{e(i["inspection_id"])}">{e(i["inspection_id"])}</a></td>'
            f"<td>{e(i['mall'] or i['site_id'])}</td><td>{e(i['district'])}</td>"
            f"<td>{e(i['officer'])}{' · ' + e(t['scheduled']) if i['scheduled'] else ''}</td>"
            f"<td>{_when(i['started_at'], lang)}</td>"
            f'<td class="state">{e(t["insp_" + i["state"]])}</td>'
            f'<td class="problems">{i["problems"]}</td></tr>'
        )
    body = (
        _nav(t, lang, officer, t["nav_inspections"])
        + f'<main><section><form id="start-form"><label>{e(t["mall"])} '
        f'<select id="site" name="site_id" required>{options}</select></label>'
        f'<button type="submit" id="start-inspection">{e(t["start_inspection"])}</button>'
        f"</form></section><section><h2>{e(t['inspections'])}</h2>"
        + _table(
            [t[k] for k in ("inspection_id", "mall", "district", "officer", "started_at")]
            + [t["state"], t["problems"]],
            rows,
            "inspections",
            t,
        )
        + "</section></main>"
    )
    return _respond(request, lang, t["nav_inspections"], body, True)


def _hub_url(snap: object) -> str | None:
    url = snap.get("url") if isinstance(snap, dict) else None
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return url
    return None


def _hub_words(text: str, t: dict[str, str]) -> str:
    """Free text from the hub, shown as sent and labelled as the hub's words."""
    return f'<span class="hub-words">{e(t["hub_words"])}：<q class="hub-text">{e(text)}</q></span>'


def rules_naming(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """For each camera and device item, the rule items whose explanation names its id."""
    rules = [r for r in items if r["kind"] == "rule"]
    texts = []
    for r in rules:
        expl = r["detail"].get("explanation")
        words = expl.values() if isinstance(expl, dict) else []
        texts.append(" ".join(str(w) for w in words))
    out: dict[str, list[dict[str, Any]]] = {}
    for i in items:
        dev = i["detail"].get("device_id")
        if i["kind"] not in ("camera", "device") or not isinstance(dev, str) or not dev:
            continue
        named = re.compile(rf"(?<![\w-]){re.escape(dev)}(?![\w-])")
        out[i["item_id"]] = [r for r, x in zip(rules, texts, strict=True) if named.search(x)]
    return out


def _device(
    i: dict[str, Any], t: dict[str, str], lang: str, naming: list[dict[str, Any]]
) -> list[str]:
    """A camera's or device's state as the hub answered it, its place and the rules naming
    it (their result at that moment)."""
    d = i["detail"]
    parts = []
    state = d.get("state")
    if isinstance(state, dict):
        code = str(state.get("state", ""))
        since = state.get("since")
        when = f"（{e(t['since'])} {_when(since, lang)}）" if isinstance(since, str) else ""
        parts.append(
            f'<span class="dev-state" data-state="{e(code)}">{e(t["device_state"])}：'
            f"<strong>{e(word(t, 'hs_', code))}</strong>{when}</span>"
        )
        if state.get("reason"):
            parts.append(_hub_words(str(state["reason"]), t))
    if i["kind"] == "device" and d.get("type"):
        parts.append(f"<span>{e(t['device_type'])}：{e(word(t, 'dt_', d['type']))}</span>")
    if d.get("role"):
        parts.append(f"<span>{e(t['place'])}：{e(word(t, 'role_', d['role']))}</span>")
    if naming:
        refs = "；".join(
            f'<span class="rule-ref" data-rule="{e(str(r["detail"].get("rule_id", "")))}" '
            f'data-status="{e(r["status"])}">{e(_title(r, lang))} '
            f"<strong>{e(_status(r, t))}</strong></span>"
            for r in naming
        )
        parts.append(f'<span class="rules-naming">{e(t["rules_naming"])}：{refs}</span>')
    return parts


def _evidence(
    i: dict[str, Any],
    inspection_id: str,
    t: dict[str, str],
    lang: str,
    naming: list[dict[str, Any]] | None = None,
) -> str:
    parts = []
    if i["has_picture"]:
        src = f"/api/v1/inspections/{e(inspection_id)}/items/{e(i['item_id'])}/picture"
        parts.append(f'<a href="{src}"><img class="thumb" src="{src}" alt="{e(i["title"])}"></a>')
    elif (url := _hub_url(i["detail"].get("snapshot"))) is not None:
        # Not fetched (yet, or it failed): the hub's own link, when it is a web address.
        parts.append(f'<a href="{e(url)}" rel="noreferrer">URL</a>')
    if i["picture_error"]:
        parts.append(f'<span class="err">{e(i["picture_error"])}</span>')
    if i["sha256"]:
        parts.append(f'<code class="sha">{e(i["sha256"])}</code>')
    if i["taken_at"]:
        parts.append(f"<span>{e(t['taken_at'])} {_when(i['taken_at'], lang)}</span>")
    err = i["detail"].get("error")
    if isinstance(err, dict) and i["kind"] != "hub":
        parts.append(_hub_words(str(err.get("message", "")), t))
    if i["kind"] in ("camera", "device"):
        parts += _device(i, t, lang, naming or [])
    if i["kind"] == "rule":
        expl = i["detail"].get("explanation")
        if isinstance(expl, dict):
            parts.append(f"<span>{e(str(expl.get('en' if lang == 'en' else 'zh', '')))}</span>")
    if i["kind"] == "hub":
        # The hub's refusal is its own words; "no answer" is this service's finding.
        note = str(i["note"])
        parts.append(_hub_words(note, t) if isinstance(err, dict) else f"<span>{e(note)}</span>")
    return "<br>".join(parts)


def waiting_pictures(insp: dict[str, Any]) -> int:
    """Pictures announced as URLs and not fetched yet (the page looks again until none)."""
    return sum(
        1
        for i in insp["items"]
        if i["status"] == "snapshot" and not i["has_picture"] and not i["picture_error"]
    )


def _status(i: dict[str, Any], t: dict[str, str]) -> str:
    """The hub's word for the item, in the page's language (the code when unknown)."""
    return word(t, "hs_", i["status"])


def _title(i: dict[str, Any], lang: str) -> str:
    d = i["detail"]
    if i["kind"] == "role":
        return strings(lang).get(f"role_{i['title']}", str(i["title"]))
    if i["kind"] == "rule" and lang == "en" and isinstance(d.get("title"), dict):
        return f"{d.get('rule_id', '')} {d['title'].get('en', '')}"
    return str(i["title"])


async def page_inspection(request: web.Request) -> web.Response:
    officer = await _who(request)
    st = request.app[STATE]
    lang = lang_for(request)
    t = strings(lang)
    inspection_id = request.match_info["inspection_id"][:64]
    insp = await get_inspection(st.store.engine, inspection_id, st.registry)
    if insp is None:
        raise web.HTTPNotFound(text=t["no_rows"])
    notices = {
        n["item_id"]: n
        for n in await list_notices(st.store.engine, st.registry, site_id=insp["site_id"])
        if n["inspection_id"] == inspection_id
    }
    open_now = insp["state"] in ("answered", "no_answer", "refused")
    deadline = (now_utc() + timedelta(days=st.config.inspections.notice_days)).astimezone(CST)
    rows = []
    naming = rules_naming(insp["items"])
    for i in insp["items"]:
        finding = t[i["finding"]] if i["finding"] else t["no_finding"]
        note = f": {e(i['note'])}" if i["note"] and i["kind"] != "hub" else ""
        actions = ""
        if open_now:
            actions = (
                f'<input class="note" maxlength="2000" value="{e(i["note"])}" '
                f'aria-label="{e(t["note"])}"><button class="pass">{e(t["mark_pass"])}</button>'
                f'<button class="problem">{e(t["mark_problem"])}</button>'
            )
        notice = notices.get(i["item_id"])
        if notice is not None:
            actions += (
                f' <a class="notice-link" href="/notices/{e(notice["notice_id"])}">'
                f"{e(notice['notice_id'])} · {e(t['n_' + notice['state']])}</a>"
            )
        elif i["finding"] == "problem":
            actions += (
                f'<div class="issue"><label>{e(t["deadline"])} <input type="datetime-local" '
                f'class="deadline" value="{deadline:%Y-%m-%dT18:00}"></label>'
                f'<input class="notice-text" maxlength="2000" value="{e(i["note"])}" '
                f'aria-label="{e(t["finding"])}">'
                f'<button class="issue-notice">{e(t["issue_notice"])}</button></div>'
            )
        rows.append(
            f'<tr data-item="{e(i["item_id"])}" data-finding="{e(i["finding"] or "")}">'
            f"<td>{i['n']}</td><td>{e(t.get('kind_' + i['kind'], i['kind']))}</td>"
            f"<td>{e(_title(i, lang))}</td>"
            f'<td class="status" data-status="{e(i["status"])}">{e(_status(i, t))}</td>'
            f"<td>{_evidence(i, inspection_id, t, lang, naming.get(i['item_id']))}</td>"
            f'<td class="finding">{e(finding)}{note}</td>'
            f'<td class="actions">{actions}</td></tr>'
        )
    state = t["insp_" + insp["state"]] + (t["late_answer"] if insp["late"] else "")
    comp = insp["compliance"] or {}
    facts = [
        (t["inspection_id"], insp["inspection_id"]),
        (t["mall"], f"{insp['mall'] or insp['site_id']} ({insp['site_id']}) {insp['district']}"),
        (t["officer"], insp["officer"]),
        (t["started_at"], _when(insp["started_at"], lang)),
        (t["answered_at"], _when(insp["answered_at"], lang)),
        (t["compliance"], t.get(str(comp.get("overall")), str(comp.get("overall", "")))),
    ]
    dl = "".join(f"<dt>{e(k)}</dt><dd>{v if '<' in v else e(v)}</dd>" for k, v in facts)
    complete = ""
    if open_now:
        complete = (
            f'<p class="noprint"><label><input type="checkbox" id="rest-pass"> '
            f'{e(t["rest_pass"])}</label> <button id="complete">{e(t["complete"])}</button></p>'
        )
    error = insp["error"]
    body = (
        _nav(t, lang, officer, t["inspection"])
        + f'<main id="inspection" data-inspection="{e(inspection_id)}" '
        f'data-site="{e(insp["site_id"])}" data-state="{e(insp["state"])}" '
        f'data-pictures="{waiting_pictures(insp)}">'
        f'<p>{e(t["state"])}: <strong id="inspection-state">{e(state)}</strong>'
        + (
            f' <span class="err">{_hub_words(str(error.get("message", "")), t)}</span>'
            if error
            else ""
        )
        + f'</p><dl class="facts">{dl}</dl>'
        + _table(
            ["#", t["kind"], t["item"], t["hub_says"], t["evidence"], t["finding"], ""],
            rows,
            "items",
            t,
        )
        + complete
        + f'<p class="noprint"><a id="record" href="/inspections/{e(inspection_id)}/record">'
        f"{e(t['print_record'])}</a></p></main>"
    )
    return _respond(request, lang, t["inspection"], body, True)


async def page_record(request: web.Request) -> web.Response:
    """The printable record: what was inspected, the evidence's sha256, the findings."""
    await _who(request)
    st = request.app[STATE]
    lang = lang_for(request)
    t = strings(lang)
    insp = await get_inspection(
        st.store.engine, request.match_info["inspection_id"][:64], st.registry
    )
    if insp is None:
        raise web.HTTPNotFound(text=t["no_rows"])
    naming = rules_naming(insp["items"])
    rows = [
        f'<tr data-item="{e(i["item_id"])}"><td>{i["n"]}</td><td>{e(_title(i, lang))}</td>'
        f"<td>{e(_status(i, t))}"
        + "".join(f"<br>{p}" for p in _device(i, t, lang, naming.get(i["item_id"], [])))
        + f"</td><td><code>{e(i['sha256'] or '')}</code></td>"
        f"<td>{_when(i['taken_at'], lang)}</td>"
        f"<td>{e(t[i['finding']] if i['finding'] else t['no_finding'])}</td>"
        f"<td>{e(i['note'])}</td></tr>"
        for i in insp["items"]
    ]
    comp = insp["compliance"] or {}
    counts = comp.get("counts")
    if not isinstance(counts, dict):
        counts = {}
    facts = [
        (t["inspection_id"], insp["inspection_id"]),
        (t["mall"], f"{insp['mall'] or insp['site_id']}（{insp['site_id']}）"),
        (t["district"], insp["district"]),
        (t["officer"], insp["officer"]),
        (t["started_at"], _when(insp["started_at"], lang)),
        (t["answered_at"], _when(insp["answered_at"], lang)),
        (t["completed_at"], _when(insp["completed_at"], lang)),
        (t["state"], t["insp_" + insp["state"]]),
        (
            t["compliance"],
            f"{t.get(str(comp.get('overall')), str(comp.get('overall', '')))} "
            + " ".join(f"{word(t, 'cnt_', k)} {v}" for k, v in sorted(counts.items())),
        ),
    ]
    dl = "".join(f"<dt>{e(k)}</dt><dd>{v if '<' in v else e(v)}</dd>" for k, v in facts)
    body = (
        f'<main class="record"><h1>{e(t["record_title"])}</h1><dl class="facts">{dl}</dl>'
        + _table(
            ["#", t["item"], t["hub_says"], t["sha256"], t["taken_at"], t["finding"], t["note"]],
            rows,
            "record-items",
            t,
        )
        + f'<p class="signature">{e(t["signature"])}：{e(insp["completed_by"] or insp["officer"])}'
        f'　　____________</p><p class="noprint">{lang_link(lang)}</p></main>'
    )
    return _respond(request, lang, t["record_title"], body, False)


async def page_results(request: web.Request) -> web.Response:
    officer = await _who(request)
    st = request.app[STATE]
    lang = lang_for(request)
    t = strings(lang)
    by = "district" if request.query.get("by") == "district" else "mall"
    rows = [
        f"<tr><td>{e(r['period'])}</td>"
        f"<td>{e((r['mall'] or r['site_id']) if by == 'mall' else r['district'])}</td>"
        f"<td>{e(r['district']) if by == 'mall' else ''}</td><td>{r['inspections']}</td>"
        f"<td>{r['completed']}</td><td>{r['no_answer']}</td><td>{r['with_problems']}</td>"
        f"<td>{r['problems']}</td></tr>"
        for r in await results(st.store.engine, st.registry, by=by)
    ]
    switch = (
        f'<p><a href="?by=mall">{e(t["by_mall"])}</a> · '
        f'<a href="?by=district">{e(t["by_district"])}</a></p>'
    )
    body = (
        _nav(t, lang, officer, t["nav_results"])
        + f"<main>{switch}"
        + _table(
            [
                t["period"],
                t["mall"] if by == "mall" else t["district"],
                t["district"] if by == "mall" else "",
            ]
            + [t[k] for k in ("n_inspections", "n_completed", "n_no_answer", "n_with_problems")]
            + [t["problems"]],
            rows,
            "results",
            t,
        )
        + "</main>"
    )
    return _respond(request, lang, t["nav_results"], body, False)


# --- notices -----------------------------------------------------------------------------------


def _notice_rows(notices: list[dict[str, Any]], t: dict[str, str], lang: str) -> list[str]:
    return [
        f'<tr data-notice="{e(n["notice_id"])}" data-state="{e(n["state"])}">'
        f'<td><a href="/notices/{e(n["notice_id"])}">{e(n["notice_id"])}</a></td>'
        f"<td>{e(n['mall'] or n['site_id'])}</td><td>{e(n['finding'][:80])}</td>"
        f"<td>{e(n['issued_by'])}</td><td>{_when(n['deadline'], lang)}</td>"
        f'<td class="state">{e(t["n_" + n["state"]])}'
        f"{' · ' + e(t['overdue']) if n['overdue'] else ''}</td></tr>"
        for n in notices
    ]


async def page_notices(request: web.Request) -> web.Response:
    officer = await _who(request)
    st = request.app[STATE]
    lang = lang_for(request)
    t = strings(lang)
    site = request.query.get("site_id")
    site = site if valid_site_id(site) else None
    found = await list_notices(st.store.engine, st.registry, site_id=site)
    rows = _notice_rows(found, t, lang)
    heads = [t[k] for k in ("notice_id", "mall", "finding", "issued_by", "deadline", "state")]
    body = _nav(t, lang, officer, t["nav_notices"]) + "<main>" + _table(heads, rows, "notices", t)
    return _respond(request, lang, t["nav_notices"], body + "</main>", False)


async def page_escalations(request: web.Request) -> web.Response:
    officer = await _who(request)
    lang = lang_for(request)
    t = strings(lang)
    if not officer.may("supervisor"):
        raise web.HTTPForbidden(text="supervisor")
    st = request.app[STATE]
    boss = None if officer.role == "admin" else officer.name
    found = await list_notices(st.store.engine, st.registry, escalated=True, supervisor=boss)
    rows = _notice_rows(found, t, lang)
    heads = [t[k] for k in ("notice_id", "mall", "finding", "issued_by", "deadline", "state")]
    body = _nav(t, lang, officer, t["nav_escalations"]) + "<main>"
    body += _table(heads, rows, "escalations", t) + "</main>"
    return _respond(request, lang, t["nav_escalations"], body, False)


def _step(s: dict[str, Any], t: dict[str, str], lang: str, n: dict[str, Any]) -> str:
    words = s.get("note") or s.get("reason") or ""
    ev = s.get("evidence") or {}
    have = {p["sha256"] for p in n["evidence"] if p["has_picture"]}
    shas = ""
    for p in ev.get("snapshots", []):
        if p["sha256"] in have:
            src = f"/api/v1/notices/{e(n['notice_id'])}/evidence/{e(p['sha256'])}"
            shas += f'<br><a href="{src}"><img class="thumb" src="{src}" alt=""></a>'
        shas += f'<br>{e(p["camera_id"])} <code class="sha">{e(p["sha256"])}</code>'
    devs = "".join(
        f'<br><span class="dev-state" data-state="{e(d["state"])}">{e(d["device_id"])}：'
        f"{e(word(t, 'hs_', d['state']))}</span>"
        for d in ev.get("devices", [])
    )
    by = word(t, "via_", s["by"]) if s["by"] == s["via"] else s["by"]  # the hub names itself
    return (
        f'<tr class="step" data-action="{e(s["action"])}"><td>{s["n"]}</td>'
        f"<td>{e(word(t, 'step_', s['action']))}</td>"
        f"<td>{e(by)}（{e(word(t, 'via_', s['via']))}）</td>"
        f"<td>{_when(s['at'], lang)}</td><td>{e(words)}{shas}{devs}</td></tr>"
    )


async def page_notice(request: web.Request) -> web.Response:
    officer = await _who(request)
    st = request.app[STATE]
    lang = lang_for(request)
    t = strings(lang)
    n = await get_notice(st.store.engine, request.match_info["notice_id"][:64], st.registry)
    if n is None:
        raise web.HTTPNotFound(text=t["no_rows"])
    state = t["n_" + n["state"]] + (f" · {t['overdue']}" if n["overdue"] else "")
    if n["pending"]:
        state += f" · {t['pending']}"
    facts = [
        (t["notice_id"], e(n["notice_id"])),
        (t["mall"], e(f"{n['mall'] or n['site_id']} ({n['site_id']})")),
        (t["finding"], e(n["finding"])),
        (t["deadline"], _when(n["deadline"], lang)),
        (t["issued_by"], e(n["issued_by"])),
        (t["issued_at"], _when(n["issued_at"], lang)),
    ]
    if n["inspection_id"]:
        link = f'<a href="/inspections/{e(n["inspection_id"])}">{e(n["inspection_id"])}</a>'
        kind, _, rest = str(n["item_id"] or "").partition(":")
        item = f"{e(word(t, 'kind_', kind))} <code>{e(rest)}</code>" if rest else ""
        facts.append((t["inspection"], f"{link} · {item}"))
    dl = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in facts)
    steps = [_step(s, t, lang, n) for s in n["steps"]]
    # What this page shows; the script reloads when the notice no longer matches it.
    waiting = sum(1 for p in n["evidence"] if not p["has_picture"] and not p["picture_error"])
    seen = json.dumps(
        [n["state"], n["version"], n["pending"], n["overdue"], waiting], separators=(",", ":")
    )
    decide = ""
    if n["state"] in ("open", "answered", "rejected") and not n["pending"]:
        decide = (
            f'<section class="decide"><label>{e(t["note"])} <input id="accept-note" '
            f'maxlength="2000"></label> <button id="accept">{e(t["accept"])}</button></section>'
        )
        if n["state"] == "answered":
            decide += (
                f'<section class="decide"><label>{e(t["reason"])} <input id="reject-reason" '
                f'maxlength="2000"></label> <button id="reject">{e(t["reject"])}</button></section>'
            )
    body = (
        _nav(t, lang, officer, t["notice"])
        + f'<main id="notice" data-notice="{e(n["notice_id"])}" data-state="{e(n["state"])}" '
        f'data-seen="{e(seen)}">'
        + f'<p>{e(t["state"])}: <strong id="notice-state">{e(state)}</strong></p>'
        + f'<dl class="facts">{dl}</dl><h2>{e(t["steps"])}</h2>'
        + _table(["#", t["steps"], t["by"], t["time"], t["note"]], steps, "steps", t)
        + decide
        + "</main>"
    )
    return _respond(request, lang, t["notice"], body, True)


def add_inspection_pages(r: web.UrlDispatcher) -> None:
    r.add_get("/inspections", page_inspections)
    r.add_get("/inspections/{inspection_id}", page_inspection)
    r.add_get("/inspections/{inspection_id}/record", page_record)
    r.add_get("/inspection-results", page_results)
    r.add_get("/notices", page_notices)
    r.add_get("/notices/{notice_id}", page_notice)
    r.add_get("/escalations", page_escalations)
