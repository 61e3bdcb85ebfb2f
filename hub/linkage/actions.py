"""Linkage actions: each one under its timeout, retried, and reported as an outcome.

An outcome says what was done to which target, ``ok`` or ``failed`` with the reason, how many
attempts it took and how long after the alarm was received it was done (``elapsed_ms``, the
VID-LINKAGE measurement). Actions never raise for a device problem: that is a failed outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from adapters.errors import AdapterError, ProtocolViolation
from hub.config import BroadcastAction, BroadcastController, PtzAction, RelayAction
from hub.linkage.devices import BroadcastPool, CameraPool
from hub.linkage.snapshots import SnapshotStore, sniff_content_type
from hub.store.writer import iso, now_utc

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Pause before a retry: long enough for a refused connection to be worth trying again,
#: short enough to stay inside the linkage budget.
RETRY_PAUSE_S = 0.1
#: A SIP page lasts as long as its message; the driver bounds every step of the call itself,
#: so the action's timeout is extended by this much rather than cutting an evacuation short.
SIP_CALL_ALLOWANCE_S = 180.0

#: Errors an action turns into a failed outcome (anything else is a bug, logged by the service).
ACTION_ERRORS = (AdapterError, TimeoutError, ValueError, OSError)


@dataclass(slots=True)
class Outcome:
    """One action's result on one target."""

    type: str
    target: str
    ok: bool
    detail: str
    done_at: datetime
    elapsed_ms: float
    attempts: int
    rule: str
    device_id: str
    """The device the action drove (camera or controller); a failure raises a fault on it."""
    attachment: dict[str, Any] | None = field(default=None, repr=False)

    def item(self) -> dict[str, Any]:
        """The update message's ``linkage`` entry."""
        return {
            "type": self.type,
            "target": self.target,
            "outcome": "ok" if self.ok else "failed",
            "detail": self.detail,
            "at": iso(self.done_at),
            "rule": self.rule,
            "elapsed_ms": self.elapsed_ms,
            "attempts": self.attempts,
        }


def describe(exc: BaseException, within: float) -> str:
    if isinstance(exc, AdapterError):
        return f"{type(exc).__name__}: {exc.message}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {within:g} s"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class Context:
    """What every action needs: the alarm's id and time, the rule's limits, a clock."""

    event_id: str
    received_at: datetime
    rule: str
    within: float
    retries: int
    clock: Callable[[], datetime] = now_utc

    def elapsed_ms(self, at: datetime) -> float:
        return round(max(0.0, (at - self.received_at) / timedelta(milliseconds=1)), 1)

    def outcome(
        self,
        type_: str,
        target: str,
        device_id: str,
        ok: bool,
        detail: str,
        attempts: int,
        done_at: datetime | None = None,
        attachment: dict[str, Any] | None = None,
    ) -> Outcome:
        at = done_at or self.clock()
        return Outcome(
            type_,
            target,
            ok,
            detail,
            at,
            self.elapsed_ms(at),
            max(1, attempts),
            self.rule,
            device_id,
            attachment,
        )


async def with_retries(
    ctx: Context,
    call: Callable[[], Awaitable[T]],
    *,
    on_failure: Callable[[], Awaitable[None]] | None = None,
    within: float | None = None,
) -> tuple[T | None, int, str]:
    """Run ``call`` under the timeout, up to 1 + retries times: (result, attempts, last error)."""
    limit = ctx.within if within is None else within
    reason = ""
    attempts = 0
    for attempt in range(ctx.retries + 1):
        attempts = attempt + 1
        try:
            async with asyncio.timeout(limit):
                return await call(), attempts, ""
        except ACTION_ERRORS as exc:
            reason = describe(exc, limit)
            log.info("%s: linkage attempt %d failed: %s", ctx.event_id, attempts, reason)
        if on_failure is not None:
            await on_failure()
        if attempt < ctx.retries:
            await asyncio.sleep(RETRY_PAUSE_S)
    return None, attempts, reason


async def snapshot(ctx: Context, pool: CameraPool, store: SnapshotStore, camera_id: str) -> Outcome:
    """Take the camera's picture, store it with its sha256, and make the attachment."""

    async def take() -> tuple[bytes, str, datetime]:
        data = await pool.snapshot(camera_id)
        taken_at = ctx.clock()
        content_type = sniff_content_type(data)
        if content_type is None:
            raise ProtocolViolation(camera_id, f"snapshot is not a JPEG or PNG ({len(data)} bytes)")
        return data, content_type, taken_at

    async def reset() -> None:
        await pool.reset(camera_id)

    got, attempts, reason = await with_retries(ctx, take, on_failure=reset)
    if got is None:
        return ctx.outcome("snapshot", camera_id, camera_id, False, reason, attempts)
    data, content_type, taken_at = got
    stored = await store.save(ctx.event_id, camera_id, data, content_type, taken_at)
    return ctx.outcome(
        "snapshot",
        camera_id,
        camera_id,
        True,
        f"{content_type} {stored.size} bytes sha256 {stored.sha256}",
        attempts,
        attachment=store.attachment(stored, data),
    )


async def ptz_preset(ctx: Context, pool: CameraPool, action: PtzAction) -> Outcome:
    async def reset() -> None:
        await pool.reset(action.camera)

    token, attempts, reason = await with_retries(
        ctx, lambda: pool.goto_preset(action.camera, action.preset), on_failure=reset
    )
    if token is None:
        return ctx.outcome("ptz_preset", action.camera, action.camera, False, reason, attempts)
    return ctx.outcome(
        "ptz_preset",
        action.camera,
        action.camera,
        True,
        f"preset {action.preset} (token {token})",
        attempts,
    )


async def relay_on(ctx: Context, pool: CameraPool, action: RelayAction) -> Outcome:
    """Switch the relay on; the caller switches it off after ``action.seconds``."""

    async def on() -> bool:
        await pool.set_relay(action.camera, action.relay, True)
        return True

    async def reset() -> None:
        await pool.reset(action.camera)

    done, attempts, reason = await with_retries(ctx, on, on_failure=reset)
    target = f"{action.camera}/{action.relay}"
    if done is None:
        return ctx.outcome("relay_pulse", target, action.camera, False, reason, attempts)
    return ctx.outcome(
        "relay_pulse", target, action.camera, True, f"on for {action.seconds:g} s", attempts
    )


async def relay_off(pool: CameraPool, action: RelayAction, *, attempts: int = 3) -> None:
    """Release a relay; a siren or strobe must not stay on, so this tries a few times."""
    for attempt in range(attempts):
        try:
            async with asyncio.timeout(10):
                await pool.set_relay(action.camera, action.relay, False)
            return
        except ACTION_ERRORS as exc:
            log.warning(
                "%s: could not release relay %s (attempt %d): %s",
                action.camera,
                action.relay,
                attempt + 1,
                describe(exc, 10),
            )
            await pool.reset(action.camera)
            await asyncio.sleep(1.0)


def broadcast_zones(action: BroadcastAction, controller: BroadcastController) -> list[str]:
    if action.zones == "all":
        return [z.id for z in controller.zones]
    return list(action.zones)


async def broadcast(
    ctx: Context, pool: BroadcastPool, action: BroadcastAction, zones: Sequence[str]
) -> list[Outcome]:
    """Play the message in every zone; zones that failed are tried again (only those)."""
    ctrl = action.controller
    sip = pool.driver_kind(ctrl) == "sip"
    limit = ctx.within + SIP_CALL_ALLOWANCE_S if sip else ctx.within
    pending = list(zones)
    results: dict[str, Outcome] = {}
    reasons: dict[str, str] = {}
    attempts = 0
    for attempt in range(ctx.retries + 1):
        attempts = attempt + 1
        try:
            async with asyncio.timeout(limit):
                driver = await pool.driver(ctrl)
                played = await driver.play(pending, action.message)
        except ACTION_ERRORS as exc:
            reason = describe(exc, limit)
            log.warning("%s: broadcast attempt %d failed: %s", ctrl, attempts, reason)
            reasons.update(dict.fromkeys(pending, reason))
        else:
            returned = ctx.clock()
            for r in played:
                if r.ok:
                    # A SIP page returns when the message has been spoken; the zone was
                    # reached when playback started.
                    at = returned - timedelta(seconds=r.duration_s) if sip else returned
                    at = max(at, r.started_at)
                    results[r.zone] = ctx.outcome(
                        "broadcast",
                        f"{ctrl}/{r.zone}",
                        ctrl,
                        True,
                        f"played {action.message!r}",
                        attempts,
                        done_at=at,
                    )
                else:
                    reasons[r.zone] = r.reason or "failed"
        pending = [z for z in pending if z not in results]
        if not pending:
            break
        if attempt < ctx.retries:
            await asyncio.sleep(RETRY_PAUSE_S)
    for zone in pending:
        results[zone] = ctx.outcome(
            "broadcast",
            f"{ctrl}/{zone}",
            ctrl,
            False,
            reasons.get(zone, "failed"),
            attempts,
        )
    return [results[z] for z in zones]
