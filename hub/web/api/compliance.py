"""Compliance: the result now or as of a moment, as JSON and as a printable report."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.compliance.engine import evaluate
from hub.compliance.load import load_facts
from hub.compliance.records import end_of_day
from hub.compliance.report import render_html, report_json
from hub.compliance.rules import local_date
from hub.store.writer import now_utc
from hub.web.api.common import bytes_reply, deps_of, json_reply, parse_when
from hub.web.api.params import COMPLIANCE_AT, q
from hub.web.csp import csp_with_style_nonce, style_nonce
from hub.web.routing import ARGS, Endpoint, unprocessable
from hub.web.schemas import ref
from hub.web.state import state_of

if TYPE_CHECKING:
    from hub.web.state import WebDeps


async def compliance_result(deps: WebDeps, at: datetime | None) -> Any:
    """The compliance result now (the service's latest) or as of ``at``."""

    service = deps.compliance
    if at is None and service.latest is not None:
        return service.latest
    link = None
    if at is None:
        link = await service.link_facts()
    facts = await load_facts(deps.engine, deps.config, at, link=link)
    return evaluate(facts)


def _at_from_args(deps: WebDeps, a: dict[str, Any]) -> datetime | None:
    if a.get("at"):
        t = parse_when(a["at"])
        assert t is not None
    elif a.get("date"):
        d = date.fromisoformat(a["date"])
        t = end_of_day(deps.config, d)
    else:
        return None
    if t.year < 1970:
        raise unprocessable("the hub has no history before 1970")
    now = now_utc()
    if t > now + timedelta(seconds=1):
        if a.get("date") and date.fromisoformat(a["date"]) == local_date(deps.config, now):
            return None
        raise unprocessable("that moment is in the future")
    return t


async def h_compliance(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    at = _at_from_args(deps, request[ARGS])
    result = await compliance_result(deps, at)
    if at is None:
        # The service's latest result: its report is encoded once, not per request.
        return bytes_reply(state_of(request).replies.compliance(result, report_json))
    return json_reply(report_json(result))


async def h_compliance_html(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    a = request[ARGS]
    result = await compliance_result(deps, _at_from_args(deps, a))
    lang = a.get("lang") or deps.config.site.language
    nonce = style_nonce()
    return web.Response(
        text=render_html(result, lang, style_nonce=nonce),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": csp_with_style_nonce(nonce)},
    )


ROUTES: tuple[Endpoint, ...] = (
    # compliance and records
    Endpoint(
        "GET",
        "/api/v1/compliance",
        h_compliance,
        "compliance",
        "Compliance now, or as of a moment or a day",
        "compliance",
        "viewer",
        params=COMPLIANCE_AT,
        response=ref("Compliance"),
    ),
    Endpoint(
        "GET",
        "/api/v1/compliance/report.html",
        h_compliance_html,
        "compliance_report",
        "Printable compliance report",
        "compliance",
        "viewer",
        params=(*COMPLIANCE_AT, q("lang", {"enum": ["zh-CN", "en"]}, "Language.")),
        media="text/html",
        response=None,
    ),
)
