"""Officers' accounts: roles and passwords — the hub console's rules, reused.

Password hashing (scrypt), the password and user-name policies, sessions in memory keyed
by the SHA-256 of the cookie, the login throttle (``LoginGuard``: per address, per account
and address, and a slow-down per account — never a lockout that an attacker could use
against an officer) and the CSRF comparison come from ``hub.web.auth``; the accounts live
in the patrol store with their own roles. There are no default accounts: ``mallhub patrol
user add`` makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hub.web.auth import (
    AuthError,
    check_password_policy,
    check_user_name,
    hash_password_async,
    verify_password_async,
)
from patrol.clock import now_utc
from patrol.models import AuditRow, UserRow

Role = Literal["officer", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("officer", "supervisor", "admin")
RANK: dict[str, int] = {r: i for i, r in enumerate(ROLES)}


@dataclass(frozen=True, slots=True)
class Officer:
    id: int
    name: str
    display_name: str
    role: Role

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def label(self) -> str:
        """How the officer is named to the mall (the ``by`` of an acknowledgement)."""
        return self.display_name or self.name


def check_role(role: str) -> Role:
    for r in ROLES:
        if r == role:
            return r
    raise AuthError(f"role {role!r} is not one of: {', '.join(ROLES)}")


async def add_user(
    engine: AsyncEngine,
    name: str,
    role: str,
    password: str,
    display_name: str = "",
    by: str = "cli",
    *,
    supervisor: str = "",
) -> None:
    """Add an account; ``supervisor`` names an existing supervisor (or admin) to whom this
    officer's overdue notices escalate."""
    check_user_name(name)
    r = check_role(role)
    check_password_policy(password)
    if len(display_name) > 64:
        raise AuthError("the display name has at most 64 characters")
    hashed = await hash_password_async(password)
    now = now_utc()
    async with engine.begin() as conn:
        exists = (
            await conn.execute(select(UserRow.id).where(UserRow.name == name))
        ).scalar_one_or_none()
        if exists is not None:
            raise AuthError(f"user {name!r} already exists")
        if supervisor:
            boss = (
                await conn.execute(select(UserRow.role).where(UserRow.name == supervisor))
            ).scalar_one_or_none()
            if boss not in ("supervisor", "admin"):
                raise AuthError(f"{supervisor!r} is not a supervisor's user name")
        await conn.execute(
            insert(UserRow).values(
                name=name,
                display_name=display_name,
                role=r,
                password_hash=hashed,
                created_at=now,
                disabled=False,
                failed_logins=0,
                supervisor=supervisor,
            )
        )
        await conn.execute(
            insert(AuditRow).values(
                at=now,
                actor=by,
                action="user.created",
                target=f"user:{name}",
                detail={"role": r, **({"supervisor": supervisor} if supervisor else {})},
            )
        )


async def login(engine: AsyncEngine, name: str, password: str, address: str) -> Officer | None:
    """Check a password (the same work whether or not the user exists); failures are
    counted and audited. Throttling is the caller's (``LoginGuard``)."""
    async with AsyncSession(engine) as session:
        row = (
            await session.execute(select(UserRow).where(UserRow.name == name[:64]))
        ).scalar_one_or_none()
    now = now_utc()
    stored = row.password_hash if row is not None else None
    ok = await verify_password_async(password[:1024], stored)
    async with engine.begin() as conn:
        if row is None or row.disabled or not ok:
            detail: dict[str, object] = {"address": address}
            if row is not None:
                fails = (row.failed_logins or 0) + 1
                await conn.execute(
                    update(UserRow).where(UserRow.id == row.id).values(failed_logins=fails)
                )
                detail["failures"] = fails
            await conn.execute(
                insert(AuditRow).values(
                    at=now,
                    actor=f"web:{name[:64]}",
                    action="login.failed",
                    target=f"user:{name[:64]}",
                    detail=detail,
                )
            )
            return None
        await conn.execute(update(UserRow).where(UserRow.id == row.id).values(failed_logins=0))
        await conn.execute(
            insert(AuditRow).values(
                at=now,
                actor=f"web:{row.name}",
                action="login",
                target=f"user:{row.name}",
                detail={"address": address},
                user_id=row.id,
            )
        )
    return Officer(row.id, row.name, row.display_name, check_role(row.role))


async def get_officer(engine: AsyncEngine, user_id: int) -> Officer | None:
    async with AsyncSession(engine) as session:
        row = (
            await session.execute(select(UserRow).where(UserRow.id == user_id))
        ).scalar_one_or_none()
    if row is None or row.disabled:
        return None
    return Officer(row.id, row.name, row.display_name, check_role(row.role))
