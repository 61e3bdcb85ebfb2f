"""Sign-in: the caller from a token or the session cookie, login and logout, the own password."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from hub.web.api.common import json_reply, principal
from hub.web.api.params import PASSWORD, strict_obj
from hub.web.auth import (
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    AuthError,
    LoginFailed,
    LoginSucceeded,
    Principal,
    TouchTokens,
    UpdateUser,
    check_password_policy,
    get_user,
    get_user_by_id,
    hash_password_async,
    user_for_token,
    verify_password_async,
)
from hub.web.routing import BODY, ApiError, Endpoint, unprocessable
from hub.web.schemas import BOOL, obj, ref
from hub.web.state import WebState, state_of

TOKEN_TOUCH_EVERY_S = 60.0


async def authenticate(request: web.Request, st: WebState) -> Principal | None:
    """The caller from a Bearer token or the session cookie, or None."""
    engine = st.deps.engine
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        found = await user_for_token(engine, token.strip())
        if found is None:
            return None
        user, token_id = found
        last = st.token_touched.get(token_id)
        now = time.monotonic()
        if last is None or now - last > TOKEN_TOUCH_EVERY_S:
            st.token_touched[token_id] = now
            await st.deps.submit(TouchTokens([token_id]))
        return Principal(user.id, user.name, user.role, "token", token_id=token_id)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 200:
        return None
    found_s = st.sessions.get(cookie)
    if found_s is None:
        return None
    key, session = found_s
    current = await get_user_by_id(engine, session.user_id)
    if current is None or current.disabled:
        st.sessions.drop(key)
        return None
    return Principal(
        current.id,
        current.name,
        current.role,
        "session",
        session_key=key,
        csrf_token=session.csrf_token,
    )


class LoginRefused(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


THROTTLED = "too many failed logins from this address: try again later"


async def check_password(
    st: WebState, name: str, password: str, address: str, stored: str | None
) -> bool:
    """A password attempt for ``name`` from ``address`` under the LoginGuard's rules.

    Raises LoginRefused(429) when the address is throttled for that name; waits the
    account's slow-down; counts a failure. Costs the same for names that do not exist.
    """
    guard = st.guard
    wait = guard.retry_after(name, address)
    if wait is not None:
        raise LoginRefused(429, "throttled", THROTTLED, wait)
    delay = guard.delay(name)
    if delay > 0:
        # Deliberate: the account is under attack from many addresses; each try costs time.
        await asyncio.sleep(delay)
    ok = await verify_password_async(password[:1024], stored)
    if ok:
        guard.succeeded(name, address)
    else:
        guard.failed(name, address)
    return ok


async def login(st: WebState, name: str, password: str, address: str) -> tuple[str, Principal]:
    """Check a name and password; returns the new session cookie value and the caller.

    Raises LoginRefused (401 wrong, 429 throttled). The answer for an unknown or disabled
    user is the same as for a wrong password, and costs the same time.
    """
    found = await get_user(st.deps.engine, name) if len(name) <= 64 else None
    user, stored = found if found is not None else (None, None)
    ok = await check_password(st, name, password, address, stored)
    if not ok or user is None or user.disabled:
        if ok:  # a disabled account's right password counts like a wrong one
            st.guard.failed(name, address)
        await st.deps.submit(LoginFailed(name[:64], address))
        raise LoginRefused(401, "invalid_credentials", "wrong user name or password", None)
    await st.deps.submit(LoginSucceeded(user.name, address))
    cookie, session = st.sessions.create(user.id, user.name)
    return cookie, Principal(
        user.id, user.name, user.role, "session", csrf_token=session.csrf_token
    )


def set_session_cookie(resp: web.StreamResponse, st: WebState, cookie: str) -> None:
    resp.set_cookie(
        SESSION_COOKIE, cookie, httponly=True, samesite="Strict", secure=st.tls, path="/"
    )
    resp.del_cookie(PRELOGIN_COOKIE, path="/")


def me_json(p: Principal) -> dict[str, Any]:
    return {"name": p.name, "role": p.role, "via": p.via, "csrf_token": p.csrf_token}


async def h_login(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    body = request[BODY]
    try:
        cookie, p = await login(st, body["name"], body["password"], request.remote or "?")
    except LoginRefused as exc:
        headers = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else None
        raise ApiError(exc.status, exc.code, exc.message, headers=headers) from None
    resp = json_reply(me_json(p))
    set_session_cookie(resp, st, cookie)
    return resp


async def h_logout(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    p = principal(request)
    if p.session_key is not None:
        st.sessions.drop(p.session_key)
        await st.deps.audit(p.actor, "logout", f"user:{p.name}")
    resp = json_reply({"ok": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def h_me(request: web.Request) -> web.StreamResponse:
    return json_reply(me_json(principal(request)))


async def h_password(request: web.Request) -> web.StreamResponse:
    """Change the caller's password. The current password is checked under the same
    throttling as a login (a stolen API token cannot be used to guess it), and every other
    session of the user ends."""
    st = state_of(request)
    p = principal(request)
    body = request[BODY]
    address = request.remote or "?"
    found = await get_user(st.deps.engine, p.name)
    try:
        ok = await check_password(st, p.name, body["current"], address, found[1] if found else None)
    except LoginRefused as exc:
        headers = {"Retry-After": str(int(exc.retry_after or 0) + 1)}
        raise ApiError(exc.status, exc.code, exc.message, headers=headers) from None
    if found is None or not ok:
        await st.deps.submit(LoginFailed(p.name, address, action="password.change_failed"))
        raise ApiError(403, "wrong_password", "the current password is wrong")
    try:
        check_password_policy(body["new"])
    except AuthError as exc:
        raise unprocessable(str(exc)) from None
    h = await hash_password_async(body["new"])
    await st.deps.submit(UpdateUser(p.name, p.actor, password_hash=h))
    st.sessions.drop_user(p.user_id, keep=p.session_key)
    return json_reply({"ok": True})


ROUTES: tuple[Endpoint, ...] = (
    # session
    Endpoint(
        "POST",
        "/api/v1/session",
        h_login,
        "login",
        "Log in (sets the session cookie)",
        "session",
        None,
        body=strict_obj(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                "password": {"type": "string", "minLength": 1, "maxLength": 1024},
            },
            ["name", "password"],
        ),
        response=ref("Me"),
        errors=(401, 429),
        description="Wrong passwords are throttled by client address, never by locking the "
        "account: 5 wrong passwords for one name from one address, or 20 for any names, and "
        "that address is refused (429 with Retry-After) for 15 minutes; other addresses can "
        "still log in. After 10 failures on one name from all addresses together, each try "
        "on that name waits (up to 4 s) before it is checked. Unknown names get the same "
        "answers in the same time as real ones.",
    ),
    Endpoint(
        "DELETE",
        "/api/v1/session",
        h_logout,
        "logout",
        "Log out",
        "session",
        "viewer",
        response=obj(["ok"], ok=BOOL),
    ),
    Endpoint(
        "GET",
        "/api/v1/me",
        h_me,
        "me",
        "Who am I (and the CSRF token)",
        "session",
        "viewer",
        response=ref("Me"),
    ),
    Endpoint(
        "PUT",
        "/api/v1/me/password",
        h_password,
        "change_password",
        "Change my password",
        "session",
        "viewer",
        body=strict_obj(
            {
                "current": {"type": "string", "maxLength": 1024},
                "new": PASSWORD,
            },
            ["current", "new"],
        ),
        response=obj(["ok"], ok=BOOL),
        errors=(429,),
        description="The current password is checked under the login's throttling (403 when "
        "wrong, 429 with Retry-After when throttled). Every other session of the user ends.",
    ),
)
