"""The inspection workflow's JSON API (网上巡查 and 整改通知); the pages are in
patrol.pages_inspect. Every change needs a session, the CSRF header and the same origin;
escalations need the ``supervisor`` role. Bad input gets a 4xx JSON answer
``{"error", "message", "message_zh"}`` and changes nothing:

| method and path | what |
|---|---|
| ``POST /api/v1/inspections`` ``{"site_id"}`` | start an inspection (202) |
| ``GET /api/v1/inspections[?site_id&state&limit]`` | newest first |
| ``GET /api/v1/inspections/{id}`` | the inspection with its checklist |
| ``GET /api/v1/inspections/{id}/items/{item_id}/picture`` | the snapshot, as the hub sent it |
| ``PUT /api/v1/inspections/{id}/items/{item_id}`` ``{"finding", "note"}`` | a finding |
| ``POST /api/v1/inspections/{id}/complete`` ``{"rest": "pass"?}`` | sign it off |
| ``GET /api/v1/inspection-results[?by=mall|district]`` | per mall or district and month |
| ``POST /api/v1/notices`` ``{"inspection_id", "item_id", "finding", "deadline"}`` | issue |
| ``GET /api/v1/notices[?state&site_id]``, ``GET /api/v1/notices/{id}`` | the hub's mirror |
| ``GET /api/v1/notices/{id}/evidence/{sha256}`` | a picture of the mall's answer |
| ``POST /api/v1/notices/{id}/accept`` ``{"note"?}``, ``…/reject`` ``{"reason"}`` | decide |
| ``GET /api/v1/escalations`` | overdue notices escalated to the supervisors |
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from patrol.clock import parse_ts
from patrol.commands import CommandRefused
from patrol.config import valid_site_id
from patrol.inspections import (
    INSPECTION_STATES,
    complete_inspection,
    get_inspection,
    get_picture,
    list_inspections,
    record_finding,
    results,
    start_inspection,
)
from patrol.notices import (
    NOTICE_STATES,
    decide,
    get_evidence_picture,
    get_notice,
    issue_notice,
    list_notices,
)
from patrol.webbase import STATE, ApiError, json_body, require

ID_MAX = 64
ITEM_MAX = 160
ZH = {
    "not_found": "未找到",
    "conflict": "当前状态不允许此操作",
    "invalid": "输入有误",
}
"""The Chinese for each refusal, before the English detail."""


def refused(exc: CommandRefused) -> ApiError:
    status = {"not_found": 404, "conflict": 409}.get(exc.code, 400)
    zh = f"{ZH.get(exc.code, '请求被拒绝')}：{exc.zh or exc}"
    return ApiError(status, exc.code, str(exc), message_zh=zh)


def _ident(request: web.Request, key: str, limit: int = ID_MAX) -> str:
    value = request.match_info[key]
    if not 1 <= len(value) <= limit or any(ord(c) < 33 for c in value):
        raise ApiError(400, "invalid", f"not a valid {key}", message_zh="输入有误：编号格式不正确")
    return value


def _site_param(value: object, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not valid_site_id(value):
        raise ApiError(400, "invalid", "site_id is not a valid site id", message_zh="商场编号无效")
    return str(value)


def _limit(request: web.Request) -> int:
    try:
        limit = int(request.query.get("limit", "200"))
    except ValueError:
        raise ApiError(400, "invalid", "limit is a whole number") from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, "invalid", "limit is between 1 and 1000")
    return limit


# --- inspections -------------------------------------------------------------------------


async def post_inspection(request: web.Request) -> web.Response:
    officer = await require(request, "officer", changes=True)
    st = request.app[STATE]
    body = await json_body(request)
    site = _site_param(body.get("site_id"), required=True)
    assert site is not None
    try:
        inspection_id = await start_inspection(
            st.store,
            st.nc,
            st.config.inspections,
            site,
            officer=officer.label,
            officer_user=officer.name,
            known_sites=frozenset(st.registry),
        )
    except CommandRefused as exc:
        raise refused(exc) from None
    found = await get_inspection(st.store.engine, inspection_id, st.registry)
    return web.json_response({"inspection": found}, status=202)


async def get_inspections(request: web.Request) -> web.Response:
    await require(request, "officer")
    st = request.app[STATE]
    site = _site_param(request.query.get("site_id"))
    state = request.query.get("state") or None
    if state is not None and state not in INSPECTION_STATES:
        raise ApiError(400, "invalid", f"state is one of: {', '.join(INSPECTION_STATES)}")
    rows = await list_inspections(
        st.store.engine, st.registry, site_id=site, state=state, limit=_limit(request)
    )
    return web.json_response({"inspections": rows, "count": len(rows)})


async def get_one_inspection(request: web.Request) -> web.Response:
    await require(request, "officer")
    st = request.app[STATE]
    found = await get_inspection(st.store.engine, _ident(request, "inspection_id"), st.registry)
    if found is None:
        raise ApiError(404, "not_found", "there is no such inspection", message_zh="未找到该巡查")
    return web.json_response({"inspection": found})


async def get_item_picture(request: web.Request) -> web.Response:
    await require(request, "officer")
    st = request.app[STATE]
    got = await get_picture(
        st.store.engine,
        _ident(request, "inspection_id"),
        _ident(request, "item_id", ITEM_MAX),
    )
    if got is None:
        raise ApiError(404, "not_found", "no picture", message_zh="没有图片")
    data, content_type = got
    return web.Response(body=data, content_type=content_type)


async def put_finding(request: web.Request) -> web.Response:
    officer = await require(request, "officer", changes=True)
    st = request.app[STATE]
    inspection_id = _ident(request, "inspection_id")
    item_id = _ident(request, "item_id", ITEM_MAX)
    body = await json_body(request)
    finding, note = body.get("finding"), body.get("note", "")
    if not isinstance(finding, str) or not isinstance(note, str):
        raise ApiError(400, "invalid", "finding and note are strings", message_zh="输入有误")
    try:
        await record_finding(
            st.store,
            inspection_id,
            item_id,
            finding,
            note,
            officer=officer.label,
            officer_user=officer.name,
        )
    except CommandRefused as exc:
        raise refused(exc) from None
    found = await get_inspection(st.store.engine, inspection_id, st.registry)
    assert found is not None
    [item] = [i for i in found["items"] if i["item_id"] == item_id]
    return web.json_response({"item": item, "counts": found["counts"]})


async def post_complete(request: web.Request) -> web.Response:
    officer = await require(request, "officer", changes=True)
    st = request.app[STATE]
    inspection_id = _ident(request, "inspection_id")
    body = await json_body(request)
    rest = body.get("rest")
    if rest is not None and rest != "pass":
        raise ApiError(400, "invalid", "rest is pass or absent", message_zh="输入有误")
    try:
        await complete_inspection(
            st.store, inspection_id, officer=officer.label, officer_user=officer.name, rest=rest
        )
    except CommandRefused as exc:
        raise refused(exc) from None
    return web.json_response(
        {"inspection": await get_inspection(st.store.engine, inspection_id, st.registry)}
    )


async def get_results(request: web.Request) -> web.Response:
    await require(request, "officer")
    st = request.app[STATE]
    by = request.query.get("by", "mall")
    if by not in ("mall", "district"):
        raise ApiError(400, "invalid", "by is mall or district")
    rows = await results(st.store.engine, st.registry, by=by)
    return web.json_response({"by": by, "results": rows})


# --- notices ---------------------------------------------------------------------------------


def _deadline(value: object) -> datetime:
    at = parse_ts(value) if isinstance(value, str) and ("Z" in value or "+" in value) else None
    if at is None:
        raise ApiError(
            400,
            "invalid",
            "deadline is an RFC 3339 time with a zone (2026-12-10T18:00:00+08:00)",
            message_zh="整改期限格式不正确（需带时区的时间）",
        )
    return at


async def post_notice(request: web.Request) -> web.Response:
    officer = await require(request, "officer", changes=True)
    st = request.app[STATE]
    body = await json_body(request)
    inspection_id, item_id = body.get("inspection_id"), body.get("item_id")
    if not isinstance(inspection_id, str) or not 1 <= len(inspection_id) <= ID_MAX:
        raise ApiError(400, "invalid", "inspection_id is required", message_zh="缺少巡查编号")
    if not isinstance(item_id, str) or not 1 <= len(item_id) <= ITEM_MAX:
        raise ApiError(400, "invalid", "item_id is required", message_zh="缺少检查项")
    try:
        notice_id = await issue_notice(
            st.store,
            st.nc,
            st.config.inspections,
            inspection_id=inspection_id,
            item_id=item_id,
            finding=body.get("finding"),
            deadline=_deadline(body.get("deadline")),
            officer=officer.label,
            officer_user=officer.name,
            site_id=_site_param(body.get("site_id")),
        )
    except CommandRefused as exc:
        raise refused(exc) from None
    found = await get_notice(st.store.engine, notice_id, st.registry)
    return web.json_response({"notice": found}, status=202)


async def get_notices(request: web.Request) -> web.Response:
    await require(request, "officer")
    st = request.app[STATE]
    state = request.query.get("state") or None
    if state is not None and state not in (*NOTICE_STATES, "open"):
        raise ApiError(400, "invalid", f"state is one of: {', '.join(NOTICE_STATES)}")
    rows = await list_notices(
        st.store.engine,
        st.registry,
        site_id=_site_param(request.query.get("site_id")),
        state=state,
        limit=_limit(request),
    )
    return web.json_response({"notices": rows, "count": len(rows)})


async def get_one_notice(request: web.Request) -> web.Response:
    await require(request, "officer")
    st = request.app[STATE]
    found = await get_notice(st.store.engine, _ident(request, "notice_id"), st.registry)
    if found is None:
        raise ApiError(404, "not_found", "there is no such notice", message_zh="未找到该整改通知")
    return web.json_response({"notice": found})


async def _decide(request: web.Request, action: str) -> web.Response:
    officer = await require(request, "officer", changes=True)
    st = request.app[STATE]
    notice_id = _ident(request, "notice_id")
    body = await json_body(request)
    try:
        request_id = await decide(
            st.store,
            st.nc,
            notice_id,
            action,
            officer=officer.label,
            officer_user=officer.name,
            text=body.get("reason" if action == "reject" else "note"),
            site_id=_site_param(body.get("site_id")),
        )
    except CommandRefused as exc:
        raise refused(exc) from None
    found = await get_notice(st.store.engine, notice_id, st.registry)
    return web.json_response({"request_id": request_id, "notice": found}, status=202)


async def get_evidence(request: web.Request) -> web.Response:
    await require(request, "officer")
    st = request.app[STATE]
    sha = request.match_info["sha256"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ApiError(400, "invalid", "not a sha256", message_zh="输入有误：不是 SHA-256")
    got = await get_evidence_picture(st.store.engine, _ident(request, "notice_id"), sha)
    if got is None:
        raise ApiError(404, "not_found", "no picture", message_zh="没有图片")
    return web.Response(body=got[0], content_type=got[1])


async def post_accept(request: web.Request) -> web.Response:
    return await _decide(request, "accept")


async def post_reject(request: web.Request) -> web.Response:
    return await _decide(request, "reject")


async def get_escalations(request: web.Request) -> web.Response:
    officer = await require(request, "supervisor")
    st = request.app[STATE]
    boss = None if officer.role == "admin" else officer.name
    rows = await list_notices(st.store.engine, st.registry, escalated=True, supervisor=boss)
    return web.json_response({"notices": rows, "count": len(rows)})


def add_inspection_routes(r: web.UrlDispatcher) -> None:
    r.add_post("/api/v1/inspections", post_inspection)
    r.add_get("/api/v1/inspections", get_inspections)
    r.add_get("/api/v1/inspections/{inspection_id}", get_one_inspection)
    r.add_get("/api/v1/inspections/{inspection_id}/items/{item_id}/picture", get_item_picture)
    r.add_put("/api/v1/inspections/{inspection_id}/items/{item_id}", put_finding)
    r.add_post("/api/v1/inspections/{inspection_id}/complete", post_complete)
    r.add_get("/api/v1/inspection-results", get_results)
    r.add_post("/api/v1/notices", post_notice)
    r.add_get("/api/v1/notices", get_notices)
    r.add_get("/api/v1/notices/{notice_id}", get_one_notice)
    r.add_get("/api/v1/notices/{notice_id}/evidence/{sha256}", get_evidence)
    r.add_post("/api/v1/notices/{notice_id}/accept", post_accept)
    r.add_post("/api/v1/notices/{notice_id}/reject", post_reject)
    r.add_get("/api/v1/escalations", get_escalations)
