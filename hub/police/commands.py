"""Receipts and commands from the police platform, handled so that none can hurt the link.

Every payload goes through ``hub.police.incoming`` first. A bad receipt is counted and
logged (rate-limited); a bad command is counted, logged and answered with an error
response. A command runs at most once per ``request_id``: a repeat gets the first answer
again, and a retained copy (what the broker replays at every subscription) never runs.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from hub.commands import CommandRegistry
from hub.police.incoming import (
    REQUEST_ID,
    CommandError,
    RecentRequests,
    Rejected,
    RejectionLog,
    decode_object,
    other_site,
    parse_receipt,
    printable,
)
from hub.store.writer import EnqueueMessage, MarkReceipted, StoreWriter, iso, now_utc

log = logging.getLogger("hub.police.link")

REQUEST_ID_RULE = "request_id must be 1-64 characters of A-Z a-z 0-9 . _ : -"
MAX_COMMAND_BYTES = 64 * 1024
# Larger commands are refused, but up to this size we still read the request_id so the
# platform gets its answer on its own response topic.
MAX_PARSE_BYTES = 1024 * 1024
RESPONSE_PRIORITY = 2


class InboxCounters(Protocol):
    """Where the inbox counts what it handled (the link's state)."""

    receipts: int
    last_receipt_at: datetime | None
    commands: int
    command_errors: int


class PoliceInbox:
    """What arrives on ``<p>/receipts`` and ``<p>/commands/<name>``."""

    def __init__(
        self,
        site_id: str,
        prefix: str,
        writer: StoreWriter,
        state: InboxCounters,
        handlers: CommandRegistry | None = None,
    ) -> None:
        self.site_id = site_id
        self.prefix = prefix
        self.writer = writer
        self.state = state
        self.handlers = handlers if handlers is not None else CommandRegistry()
        """What each command does (the services that carry them out register there)."""
        self.rejections = RejectionLog(log)
        """Bad receipts and commands by (topic kind, reason): counted, logged rarely."""
        self.answered = RecentRequests()

    async def receipt(self, payload: bytes) -> None:
        """Record a receipt; never raises for what the payload holds."""
        try:
            receipt = parse_receipt(payload)
            found = await self.writer.submit(MarkReceipted(receipt.event_id, receipt.by, None))
        except Rejected as exc:
            self.rejections.reject("receipt", exc.reason, exc.message)
            return
        except Exception as exc:  # the store refused it or is down: the alarm is sent again
            self.rejections.reject("receipt", "not_recorded", type(exc).__name__)
            return
        self.state.receipts += 1
        self.state.last_receipt_at = now_utc()
        if found:
            log.debug("receipt for %r by %r", receipt.event_id, receipt.by)

    async def command(self, name: str, payload: bytes, *, retained: bool = False) -> None:
        """Run a command once and queue its answer on ``<p>/responses/<request_id>``."""
        self.state.commands += 1
        request_id: str | None = None
        try:
            if len(payload) > MAX_PARSE_BYTES:
                raise CommandError("too_large", f"command payload over {MAX_COMMAND_BYTES} bytes")
            try:
                body = decode_object(payload)
            except Rejected as exc:
                raise CommandError("malformed", exc.message) from exc
            rid = body.get("request_id")
            if not isinstance(rid, str) or not REQUEST_ID.match(rid):
                raise CommandError("malformed", REQUEST_ID_RULE)
            request_id = rid
            earlier = self.answered.get(rid)
            if earlier is not None:
                # A repeat (QoS 1 redelivery, a platform retrying, a retained copy): it ran
                # once. A live repeat gets the same answer again; a retained copy nothing.
                self.rejections.reject("command", "repeat", f"request_id {rid} seen before")
                if not retained:
                    await self._respond(rid, earlier)
                return
            if retained:
                raise CommandError("invalid", "a retained command is never run; send it unretained")
            if len(payload) > MAX_COMMAND_BYTES:
                raise CommandError("too_large", f"command payload over {MAX_COMMAND_BYTES} bytes")
            handler = self.handlers.get(name)
            if handler is None:
                raise CommandError("unknown_command", f"unknown command {name[:64]!r}")
            site = other_site(body, self.site_id)
            if site is not None:
                raise CommandError("invalid", f"the command is for site {site!r}, not this one")
            response: dict[str, Any] = {"ok": True, "result": await handler(body)}
        except CommandError as exc:
            self.state.command_errors += 1
            self.rejections.reject("command", exc.code, exc.message)
            response = {"ok": False, "error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:  # a handler bug must not take the link down
            self.state.command_errors += 1
            log.exception("command %r failed", name[:64])
            response = {"ok": False, "error": {"code": "internal", "message": type(exc).__name__}}
        message = {
            "schema": "mallhub/response/1",
            "site_id": self.site_id,
            "request_id": request_id,
            "command": printable(name[:64]),
            "ts": iso(now_utc()),
            **response,
        }
        if request_id is not None:
            self.answered.remember(request_id, message)
        await self._respond(request_id, message)

    async def _respond(self, request_id: str | None, message: dict[str, Any]) -> None:
        topic = f"{self.prefix}/responses/{request_id or '_invalid'}"
        try:
            await self.writer.submit(
                EnqueueMessage("response", topic, message, priority=RESPONSE_PRIORITY)
            )
        except Exception as exc:  # the store is down: the platform gets no answer, the link lives
            log.warning("police link: could not queue the answer to %s: %s", request_id, exc)
