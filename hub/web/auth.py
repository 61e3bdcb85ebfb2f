"""Who is asking, and may they: passwords, sessions, API tokens, roles, CSRF, throttling.

* Passwords are hashed with scrypt (memory-hard, stdlib) with a per-user salt; the cost
  parameters travel inside the hash string so they can be raised later without breaking
  existing accounts.
* Sessions live in the hub's memory, keyed by the SHA-256 of the cookie value: a hub restart
  logs everybody out, and a leaked memory dump or log line does not hand out live sessions.
* API tokens are shown once and stored as their SHA-256 only.
* Every change to users and tokens goes through the store's single writer and is audited.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.models import ApiToken, User
from hub.store.writer import WriteContext, iso
from hub.web.throttle import LoginGuard as LoginGuard  # the login throttle, with the rest

Role = Literal["viewer", "operator", "technician", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "technician", "admin")
#: Each role may do everything the roles before it may.
RANK: dict[str, int] = {r: i for i, r in enumerate(ROLES)}

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

SESSION_COOKIE = "mallhub_session"
PRELOGIN_COOKIE = "mallhub_prelogin"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_IDLE = timedelta(hours=12)
SESSION_MAX = timedelta(days=7)
TOKEN_PREFIX = "mh_"


class AuthError(ValueError):
    """Input about users or tokens that cannot be accepted; ``str(exc)`` is for the user.

    A ValueError, so the store writer rejects the operation without judging the store sick.
    """


class UserNotFound(AuthError, LookupError):
    pass


# --- passwords -------------------------------------------------------------------------------

# OWASP's scrypt option "N=2^15, r=8, p=3": 32 MiB per hash.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 3
_SCRYPT_MAXMEM = 256 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n=…,r=…,p=…$salt$hash`` (base64 without padding)."""
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )
    return f"scrypt$n={n},r={r},p={p}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a hash made by :func:`hash_password`."""
    try:
        scheme, params, salt_text, hash_text = stored.split("$")
        if scheme != "scrypt":
            return False
        kv = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(kv["n"]), int(kv["r"]), int(kv["p"])
        # A hash string from the store cannot ask for unbounded work or memory.
        if not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
            return False
        salt, expected = _unb64(salt_text), _unb64(hash_text)
    except (ValueError, KeyError):
        return False
    dk = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=len(expected)
    )
    return hmac.compare_digest(dk, expected)


#: Checked against when the user does not exist, so timing does not reveal user names.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AuthError(f"the password must have at most {MAX_PASSWORD} characters")


def check_user_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise AuthError(
            "a user name has 1-64 letters, digits, '_', '.', '@' or '-' and starts with a "
            "letter or digit"
        )
    return name


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise AuthError(f"role {role!r} is not one of: {', '.join(ROLES)}")
    return role


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# --- who is asking ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user_id: int
    name: str
    role: Role
    via: Literal["session", "token"]
    session_key: str | None = None
    csrf_token: str | None = None
    token_id: int | None = None

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"web:{self.name}" if self.via == "session" else f"token:{self.name}"


@dataclass(slots=True)
class Session:
    user_id: int
    name: str
    csrf_token: str
    created: float
    last_seen: float


@dataclass(slots=True)
class SessionStore:
    """Sessions in memory, keyed by the SHA-256 of the cookie value."""

    idle_s: float = SESSION_IDLE.total_seconds()
    max_s: float = SESSION_MAX.total_seconds()
    _sessions: dict[str, Session] = field(default_factory=dict)

    def create(self, user_id: int, name: str) -> tuple[str, Session]:
        self._expire()
        cookie = secrets.token_urlsafe(32)
        now = time.monotonic()
        s = Session(user_id, name, secrets.token_urlsafe(32), now, now)
        self._sessions[token_hash(cookie)] = s
        return cookie, s

    def get(self, cookie: str) -> tuple[str, Session] | None:
        key = token_hash(cookie)
        s = self._sessions.get(key)
        if s is None:
            return None
        now = time.monotonic()
        if now - s.last_seen > self.idle_s or now - s.created > self.max_s:
            del self._sessions[key]
            return None
        s.last_seen = now
        return key, s

    def drop(self, key: str) -> None:
        self._sessions.pop(key, None)

    def drop_user(self, user_id: int, keep: str | None = None) -> None:
        """End the user's sessions (all but ``keep``, the key of the one asking)."""
        for key in [k for k, s in self._sessions.items() if s.user_id == user_id and k != keep]:
            del self._sessions[key]

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [
            k
            for k, s in self._sessions.items()
            if now - s.last_seen > self.idle_s or now - s.created > self.max_s
        ]:
            del self._sessions[key]


def csrf_ok(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


# --- reading users and tokens ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    name: str
    role: Role
    created_at: datetime
    disabled: bool
    failed_logins: int
    locked_until: datetime | None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "created_at": iso(self.created_at),
            "disabled": self.disabled,
            "failed_logins": self.failed_logins,
            "locked_until": iso(self.locked_until) if self.locked_until else None,
        }


def _view(u: Any) -> UserView:
    return UserView(
        u.id, u.name, u.role, u.created_at, bool(u.disabled), u.failed_logins or 0, u.locked_until
    )


async def list_users(engine: AsyncEngine) -> list[UserView]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(User).order_by(User.name))).all()
    return [_view(r) for r in rows]


async def get_user(engine: AsyncEngine, name: str) -> tuple[UserView, str] | None:
    """The user and their password hash."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(User).where(User.name == name))).first()
    return None if row is None else (_view(row), row.password_hash)


async def get_user_by_id(engine: AsyncEngine, user_id: int) -> UserView | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(User).where(User.id == user_id))).first()
    return None if row is None else _view(row)


async def count_admins(engine: AsyncEngine) -> int:
    return sum(1 for u in await list_users(engine) if u.role == "admin" and not u.disabled)


async def user_for_token(engine: AsyncEngine, token: str) -> tuple[UserView, int] | None:
    """The (enabled) user a live token belongs to, and the token's id."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(ApiToken.id, ApiToken.user_id).where(
                    ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None)
                )
            )
        ).first()
    if row is None:
        return None
    user = await get_user_by_id(engine, row.user_id)
    if user is None or user.disabled:
        return None
    return user, row.id


@dataclass(frozen=True, slots=True)
class TokenView:
    id: int
    user: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at) if self.last_used_at else None,
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
        }


async def list_tokens(engine: AsyncEngine, user_id: int | None = None) -> list[TokenView]:
    q = (
        select(ApiToken, User.name.label("user_name"))
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.id)
    )
    if user_id is not None:
        q = q.where(ApiToken.user_id == user_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [
        TokenView(r.id, r.user_name, r.name, r.created_at, r.last_used_at, r.revoked_at)
        for r in rows
    ]


# --- writer operations (all audited) ---------------------------------------------------------


async def _user(ctx: WriteContext, name: str) -> User:
    row = (await ctx.session.execute(select(User).where(User.name == name))).scalar_one_or_none()
    if row is None:
        raise UserNotFound(f"there is no user {name!r}")
    return row


@dataclass(slots=True)
class CreateUser:
    name: str
    role: Role
    password_hash: str
    by: str

    async def apply(self, ctx: WriteContext) -> int:
        exists = (
            await ctx.session.execute(select(User.id).where(User.name == self.name))
        ).scalar_one_or_none()
        if exists is not None:
            raise AuthError(f"user {self.name!r} already exists")
        row = User(
            name=self.name,
            role=self.role,
            password_hash=self.password_hash,
            created_at=ctx.now,
            disabled=False,
            failed_logins=0,
            locked_until=None,
        )
        ctx.session.add(row)
        await ctx.session.flush()
        ctx.audit(self.by, "user.created", f"user:{self.name}", {"role": self.role})
        return row.id


@dataclass(slots=True)
class UpdateUser:
    """Change a user's role, enable/disable, reset the password or unlock."""

    name: str
    by: str
    role: Role | None = None
    disabled: bool | None = None
    password_hash: str | None = None
    unlock: bool = False

    async def apply(self, ctx: WriteContext) -> UserView:
        row = await _user(ctx, self.name)
        changes: dict[str, Any] = {}
        if self.role is not None and self.role != row.role:
            changes["role"] = {"from": row.role, "to": self.role}
            row.role = self.role
        if self.disabled is not None and self.disabled != row.disabled:
            changes["disabled"] = self.disabled
            row.disabled = self.disabled
        if self.password_hash is not None:
            changes["password"] = "changed"  # never the password or its hash
            row.password_hash = self.password_hash
        if self.unlock or self.password_hash is not None:
            if row.failed_logins or row.locked_until is not None:
                changes["unlocked"] = True
            row.failed_logins = 0
            row.locked_until = None
        if changes:
            ctx.audit(self.by, "user.updated", f"user:{self.name}", changes)
        return _view(row)


@dataclass(slots=True)
class LoginFailed:
    """Count a wrong password (shown to admins, audited). The store never locks an
    account: throttling is LoginGuard's, by address, so that it cannot lock anyone out."""

    name: str
    address: str
    action: str = "login.failed"

    async def apply(self, ctx: WriteContext) -> None:
        row = (
            await ctx.session.execute(select(User).where(User.name == self.name))
        ).scalar_one_or_none()
        detail: dict[str, Any] = {"address": self.address}
        if row is not None:
            row.failed_logins = (row.failed_logins or 0) + 1
            detail["failures"] = row.failed_logins
        ctx.audit(f"web:{self.name[:64]}", self.action, f"user:{self.name[:64]}", detail)


@dataclass(slots=True)
class LoginSucceeded:
    name: str
    address: str
    via: str = "web"

    async def apply(self, ctx: WriteContext) -> None:
        row = await _user(ctx, self.name)
        row.failed_logins = 0
        row.locked_until = None
        ctx.audit(
            f"{self.via}:{self.name}", "login", f"user:{self.name}", {"address": self.address}
        )


@dataclass(slots=True)
class CreateToken:
    user: str
    name: str
    token_hash: str
    by: str

    async def apply(self, ctx: WriteContext) -> int:
        owner = await _user(ctx, self.user)
        row = ApiToken(
            user_id=owner.id,
            name=self.name,
            token_hash=self.token_hash,
            created_at=ctx.now,
            last_used_at=None,
            revoked_at=None,
        )
        ctx.session.add(row)
        await ctx.session.flush()
        ctx.audit(
            self.by, "token.created", f"token:{row.id}", {"user": self.user, "name": self.name}
        )
        return row.id


@dataclass(slots=True)
class RevokeToken:
    token_id: int
    by: str

    async def apply(self, ctx: WriteContext) -> bool:
        row = await ctx.session.get(ApiToken, self.token_id)
        if row is None:
            raise LookupError(f"there is no token {self.token_id}")
        if row.revoked_at is not None:
            return False
        row.revoked_at = ctx.now
        ctx.audit(self.by, "token.revoked", f"token:{row.id}", {"name": row.name})
        return True


@dataclass(slots=True)
class TouchTokens:
    """Record when tokens were last used (batched, at most once a minute per token)."""

    token_ids: Sequence[int]

    async def apply(self, ctx: WriteContext) -> None:
        for tid in self.token_ids:
            row = await ctx.session.get(ApiToken, tid)
            if row is not None:
                row.last_used_at = ctx.now


async def hash_password_async(password: str) -> str:
    """Hash in a thread: scrypt is deliberately slow and must not stall the event loop."""
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str, stored: str | None) -> bool:
    return await asyncio.to_thread(verify_password, password, stored or _DUMMY_HASH) and (
        stored is not None
    )
