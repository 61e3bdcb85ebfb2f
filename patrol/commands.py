"""Commands to a mall's hub (contract: docs/police-link.md, "Topics the hub subscribes to").

A command is recorded first (``patrol_commands``, with who sent it and, later, the hub's
response, which the workers match by request_id), audited, then published on the NATS
subject of the hub's command topic. The inspection workflow builds on the same path:
``snapshot``, ``probe``, ``compliance``, ``inspect`` and ``notice`` go out exactly like
``ack`` (patrol.inspections, patrol.notices).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from patrol.clock import now_utc
from patrol.config import valid_site_id
from patrol.models import AuditRow, CommandRow, EventRow
from patrol.store import PatrolStore

COMMANDS = ("ack", "snapshot", "probe", "compliance", "inspect", "notice")

Alongside = Callable[[AsyncConnection, str, datetime], Awaitable[None]]
"""Writes rows that belong to a command (an inspection, a notice) in its transaction;
gets the request_id and the time."""


class CommandRefused(ValueError):
    """The command cannot be sent; ``code`` is for the API, ``str(exc)`` for people."""

    def __init__(self, code: str, message: str, zh: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.zh = zh
        """The same in Chinese, for the officer (optional)."""


def new_request_id() -> str:
    return f"patrol-{secrets.token_hex(8)}"


async def _record(
    engine: AsyncEngine,
    site: str,
    name: str,
    body: dict[str, Any],
    by: str,
    *,
    ack_event: str | None = None,
    alongside: Alongside | None = None,
) -> None:
    now = now_utc()
    async with engine.begin() as conn:
        if alongside is not None:
            await alongside(conn, body["request_id"], now)
        if ack_event is not None:
            res = await conn.execute(
                update(EventRow)
                .where(EventRow.event_id == ack_event, EventRow.state == "open")
                .values(state="ack_sent", ack_by=by[:64], ack_at=now)
            )
            if not res.rowcount:
                state = (
                    await conn.execute(select(EventRow.state).where(EventRow.event_id == ack_event))
                ).scalar_one_or_none()
                if state is None:
                    raise CommandRefused("not_found", f"there is no event {ack_event}")
                if state != "ack_sent":
                    raise CommandRefused("conflict", f"the event is already {state}")
        await conn.execute(
            insert(CommandRow).values(
                request_id=body["request_id"],
                site_id=site,
                name=name,
                body=body,
                by=by[:64],
                sent_at=now,
            )
        )
        await conn.execute(
            insert(AuditRow).values(
                at=now,
                actor=by[:80],
                action=f"command.{name}",
                target=f"site:{site}",
                detail={
                    "request_id": body["request_id"],
                    **({"event_id": ack_event} if ack_event else {}),
                },
            )
        )


async def send_command(
    store: PatrolStore,
    nc: NatsClient,
    site: str,
    name: str,
    fields: dict[str, Any],
    by: str,
    *,
    alongside: Alongside | None = None,
) -> str:
    """Record and publish a command; returns its request_id. ``alongside`` writes the rows
    the command belongs with in the same transaction (and may refuse with
    ``CommandRefused``)."""
    if not valid_site_id(site):
        raise CommandRefused("invalid", "invalid site id")
    if name not in COMMANDS:
        raise CommandRefused("invalid", f"unknown command {name!r}")
    body = {"request_id": new_request_id(), **fields}
    ack_event = fields.get("event_id") if name == "ack" else None
    async with store.serial():
        await _record(store.engine, site, name, body, by, ack_event=ack_event, alongside=alongside)
    await nc.publish(f"mallhub.v1.{site}.commands.{name}", json.dumps(body).encode())
    await nc.flush(timeout=5)
    return str(body["request_id"])


async def acknowledge(
    store: PatrolStore, nc: NatsClient, event_id: str, officer: str, note: str | None = None
) -> str:
    """An officer acknowledges an alarm: the hub gets the ``ack`` command; the event shows
    ``ack_sent`` until the hub's update says ``acknowledged``."""
    async with store.engine.connect() as conn:
        site = (
            await conn.execute(select(EventRow.site_id).where(EventRow.event_id == event_id))
        ).scalar_one_or_none()
    if site is None:
        raise CommandRefused("not_found", f"there is no event {event_id}")
    fields: dict[str, Any] = {"event_id": event_id, "by": officer}
    if note:
        fields["note"] = note
    return await send_command(store, nc, site, "ack", fields, officer)
