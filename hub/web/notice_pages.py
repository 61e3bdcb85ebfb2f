"""Console pages for rectification notices (整改通知): the list, one notice with its steps and
evidence, and the form by which the mall's staff answer it (posted by ``notices.js`` to
``POST /api/v1/notices/{notice_id}/answer``)."""

from __future__ import annotations

from aiohttp import web

from hub.compliance.rules.base import ROLE_NAMES
from hub.store.writer import now_utc
from hub.web.pages import _page_user, lang_of, render
from hub.web.state import state_of

STATE_TEXT: dict[str, tuple[str, str]] = {
    "open": ("待整改", "open"),
    "answered": ("已回复，待民警确认", "answered, awaiting the officer"),
    "rejected": ("民警退回，需重新整改", "rejected by the officer"),
    "closed": ("已销号", "closed"),
}
STEP_TEXT: dict[str, tuple[str, str]] = {
    "issued": ("民警下发", "issued by the officer"),
    "answered": ("商场回复", "answered by the mall"),
    "rejected": ("民警退回", "rejected by the officer"),
    "accepted": ("民警确认销号", "accepted by the officer"),
    "overdue": ("已超过整改期限", "deadline passed"),
}

ITEM_KIND_TEXT: dict[str, tuple[str, str]] = {
    "camera": ("摄像机", "camera"),
    "device": ("设备", "device"),
    "role": ("部位", "place"),
    "rule": ("合规规则", "rule"),
}


def item_label(item_id: str, names: dict[str, str], lang: str) -> str:
    """An inspection item as people read it: "摄像机 正门摄像机 (cam-gate-1)", "部位 财务室"."""
    kind, _, subject = item_id.partition(":")
    words = ITEM_KIND_TEXT.get(kind)
    if words is None or not subject:
        return item_id
    what = words[1] if lang == "en" else words[0]
    if kind == "role" and subject in ROLE_NAMES:
        return f"{what} {ROLE_NAMES[subject].get(lang)}"
    name = names.get(subject)
    return f"{what} {name} ({subject})" if name else f"{what} {subject}"


async def notices_page(request: web.Request) -> web.StreamResponse:
    p = await _page_user(request)
    service = state_of(request).deps.notices
    now = now_utc()
    views = await service.list() if service is not None else []
    items = [v.to_json(now) for v in views]
    return render(
        request,
        "notices.html.j2",
        p,
        items=items,
        counts={
            "open": sum(1 for i in items if i["open"]),
            "overdue": sum(1 for i in items if i["overdue"]),
        },
        state_text=STATE_TEXT,
    )


async def notice_page(request: web.Request) -> web.StreamResponse:
    p = await _page_user(request)
    deps = state_of(request).deps
    service = deps.notices
    notice_id = request.match_info["notice_id"]
    view = await service.get(notice_id) if service is not None and len(notice_id) <= 64 else None
    if view is None:
        return render(request, "error.html.j2", p, status=404, message="not_found")
    n = view.to_json(now_utc())
    item_id = (n.get("item") or {}).get("item_id", "")
    kind, _, subject = item_id.partition(":")
    cameras = [
        {"id": c.id, "name": c.name, "checked": kind == "camera" and subject == c.id}
        for c in deps.config.devices.cameras
    ]
    devices = [
        {"id": d.id, "name": d.name, "type": d.type, "checked": subject == d.id}
        for d in deps.index.devices.values()
    ]
    names = {d.id: d.name for d in deps.index.devices.values()}
    names.update({c.id: c.name for c in deps.config.devices.cameras})
    return render(
        request,
        "notice.html.j2",
        p,
        n=n,
        item_text=item_label(item_id, names, lang_of(request)) if item_id else "",
        cameras=cameras,
        devices=devices,
        answerable=n["state"] in ("open", "rejected"),
        state_text=STATE_TEXT,
        step_text=STEP_TEXT,
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/notices", notices_page)
    app.router.add_get("/notices/{notice_id}", notice_page)
