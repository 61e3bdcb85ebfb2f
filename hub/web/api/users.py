"""Users, API tokens and the audit log."""

from __future__ import annotations

from aiohttp import web

from hub.web import queries
from hub.web.api.common import deps_of, json_reply, principal
from hub.web.api.params import BIG, LIMIT, PASSWORD, SHORT, path, q, strict_obj
from hub.web.auth import (
    ROLES,
    AuthError,
    CreateToken,
    CreateUser,
    RevokeToken,
    UpdateUser,
    UserNotFound,
    check_password_policy,
    check_role,
    check_user_name,
    count_admins,
    get_user,
    hash_password_async,
    list_tokens,
    list_users,
    new_token,
    token_hash,
)
from hub.web.routing import ARGS, BODY, Endpoint, conflict, not_found, unprocessable
from hub.web.schemas import BOOL, USER_PATTERN, ref
from hub.web.state import state_of


async def h_users(request: web.Request) -> web.StreamResponse:
    users = await list_users(deps_of(request).engine)
    return json_reply({"items": [u.to_json() for u in users]})


async def h_user(request: web.Request) -> web.StreamResponse:
    found = await get_user(deps_of(request).engine, request[ARGS]["name"])
    if found is None:
        raise not_found("there is no such user")
    return json_reply(found[0].to_json())


async def h_add_user(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    body = request[BODY]
    try:
        name = check_user_name(body["name"])
        role = check_role(body["role"])
        check_password_policy(body["password"])
    except AuthError as exc:
        raise unprocessable(str(exc)) from None
    h = await hash_password_async(body["password"])
    try:
        await deps.submit(CreateUser(name, role, h, principal(request).actor))
    except AuthError as exc:
        raise conflict(str(exc)) from None
    found = await get_user(deps.engine, name)
    assert found is not None
    return json_reply(found[0].to_json(), 201)


async def h_update_user(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    deps = st.deps
    p = principal(request)
    name = request[ARGS]["name"]
    body = request[BODY]
    found = await get_user(deps.engine, name)
    if found is None:
        raise not_found("there is no such user")
    user = found[0]
    demote = "role" in body and body["role"] != "admin"
    disable = body.get("disabled") is True
    if user.name == p.name and (demote or disable):
        raise conflict("you cannot demote or disable yourself")
    last_admin = user.role == "admin" and not user.disabled and (demote or disable)
    if last_admin and await count_admins(deps.engine) <= 1:
        raise conflict("this is the last admin")
    pw_hash = None
    if "password" in body:
        try:
            check_password_policy(body["password"])
        except AuthError as exc:
            raise unprocessable(str(exc)) from None
        pw_hash = await hash_password_async(body["password"])
    try:
        view = await deps.submit(
            UpdateUser(
                name,
                p.actor,
                role=body.get("role"),
                disabled=body.get("disabled"),
                password_hash=pw_hash,
                unlock=bool(body.get("unlock")),
            )
        )
    except UserNotFound:
        raise not_found("there is no such user") from None
    if disable or pw_hash is not None:
        st.sessions.drop_user(user.id)
    if body.get("unlock") or pw_hash is not None:
        st.guard.forget(name)
    return json_reply(view.to_json())


async def h_tokens(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    user_id = None
    if request[ARGS].get("user"):
        found = await get_user(deps.engine, request[ARGS]["user"])
        if found is None:
            return json_reply({"items": []})
        user_id = found[0].id
    return json_reply({"items": [t.to_json() for t in await list_tokens(deps.engine, user_id)]})


async def h_add_token(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    body = request[BODY]
    token = new_token()
    try:
        token_id = await deps.submit(
            CreateToken(body["user"], body["name"], token_hash(token), principal(request).actor)
        )
    except UserNotFound:
        raise not_found("there is no such user") from None
    return json_reply(
        {"id": token_id, "name": body["name"], "user": body["user"], "token": token}, 201
    )


async def h_revoke_token(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    token_id = request[ARGS]["token_id"]
    try:
        await deps.submit(RevokeToken(token_id, principal(request).actor))
    except LookupError:
        raise not_found("there is no such token") from None
    tokens = [t for t in await list_tokens(deps.engine) if t.id == token_id]
    return json_reply(tokens[0].to_json())


async def h_audit(request: web.Request) -> web.StreamResponse:
    a = request[ARGS]
    items = await queries.audit_entries(
        deps_of(request).engine,
        actor=a.get("actor"),
        action=a.get("action"),
        subject=a.get("subject"),
        limit=a["limit"],
        before=a.get("before"),
    )
    return json_reply({"items": items})


ROUTES: tuple[Endpoint, ...] = (
    # users, tokens, audit
    Endpoint(
        "GET",
        "/api/v1/users",
        h_users,
        "list_users",
        "Users",
        "users",
        "admin",
        response=ref("UserList"),
    ),
    Endpoint(
        "POST",
        "/api/v1/users",
        h_add_user,
        "add_user",
        "Add a user",
        "users",
        "admin",
        body=strict_obj(
            {
                "name": {"type": "string", "pattern": USER_PATTERN},
                "role": {"enum": list(ROLES)},
                "password": PASSWORD,
            },
            ["name", "role", "password"],
        ),
        status=201,
        response=ref("User"),
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/api/v1/users/{name}",
        h_user,
        "get_user",
        "One user",
        "users",
        "admin",
        params=(path("name", {"type": "string", "pattern": USER_PATTERN}, "User name."),),
        response=ref("User"),
    ),
    Endpoint(
        "PATCH",
        "/api/v1/users/{name}",
        h_update_user,
        "update_user",
        "Change role, disable/enable, reset password, unlock",
        "users",
        "admin",
        params=(path("name", {"type": "string", "pattern": USER_PATTERN}, "User name."),),
        body=strict_obj(
            {
                "role": {"enum": list(ROLES)},
                "disabled": BOOL,
                "password": PASSWORD,
                "unlock": BOOL,
            },
            [],
        ),
        response=ref("User"),
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/api/v1/tokens",
        h_tokens,
        "list_tokens",
        "API tokens",
        "users",
        "admin",
        params=(q("user", {"type": "string", "maxLength": 64}, "Only this user's."),),
        response=ref("TokenList"),
    ),
    Endpoint(
        "POST",
        "/api/v1/tokens",
        h_add_token,
        "add_token",
        "Create an API token (shown once)",
        "users",
        "admin",
        body=strict_obj(
            {"user": {"type": "string", "pattern": USER_PATTERN}, "name": SHORT}, ["user", "name"]
        ),
        status=201,
        response=ref("NewToken"),
        errors=(404,),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/tokens/{token_id}",
        h_revoke_token,
        "revoke_token",
        "Revoke an API token",
        "users",
        "admin",
        params=(path("token_id", {"type": "integer", "minimum": 1, "maximum": BIG}, "Token id."),),
        response=ref("Token"),
    ),
    Endpoint(
        "GET",
        "/api/v1/audit",
        h_audit,
        "audit_log",
        "The audit log (newest first)",
        "users",
        "admin",
        params=(
            q("actor", {"type": "string", "maxLength": 128}, "Only this actor."),
            q("action", {"type": "string", "maxLength": 64}, "Only this action."),
            q("subject", {"type": "string", "maxLength": 160}, "Only this subject."),
            LIMIT,
            q("before", {"type": "integer", "minimum": 1, "maximum": BIG}, "Only older entries."),
        ),
        response=ref("AuditList"),
    ),
)
