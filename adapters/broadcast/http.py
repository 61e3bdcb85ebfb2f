"""Driver for IP PA controllers with an HTTP/JSON API.

Endpoints and request bodies differ between makes, so both are per-site options:

``play_path`` / ``stop_path`` / ``status_path``
    default ``/api/play``, ``/api/stop``, ``/api/status`` below ``url``.
``play_template`` / ``stop_template``
    the JSON body, either as JSON text where ``${name}`` stands for a JSON value
    (``{"zones": ${zones}, "msg": ${message}}``) or as a mapping whose string leaves are
    substituted (a leaf that is exactly ``"${zones}"`` becomes the list itself). Variables:
    ``zones`` (targets), ``message`` (stored name, or null for free text), ``text``,
    ``priority``, ``language``.
``auth``
    ``basic`` (default when a username is configured), ``digest`` or ``none``.
``timeout_s`` (5), ``priority`` (1), ``zone_format`` (``str`` or ``int``), ``language``
(``zh``), ``message_map`` (stored message name → the controller's own message id),
``messages_dir`` (site-specific messages beside the shipped ones).

A play answered 2xx counts as played in every zone. 409 means busy: when the answer lists
the busy zones (``{"busy": [...]}``) the others are tried again at once, since an evacuation
message must reach every zone that can take it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from adapters.broadcast.audio import MessageCatalog, wav_duration_s
from adapters.broadcast.base import (
    DEFAULT_TIMEOUT_S,
    REASON_BUSY,
    BroadcastDriver,
    BroadcastStatus,
    ControllerConfig,
    PlayResult,
    ZoneConfig,
    ZoneState,
    now_utc,
    option_float,
)
from adapters.errors import (
    AdapterError,
    AuthFailed,
    DeviceUnreachable,
    NotSupported,
    ProtocolViolation,
)

log = logging.getLogger(__name__)

DEFAULT_PLAY_TEMPLATE: Final[Mapping[str, Any]] = {
    "zones": "${zones}",
    "message": "${message}",
    "text": "${text}",
    "priority": "${priority}",
}
DEFAULT_STOP_TEMPLATE: Final[Mapping[str, Any]] = {"zones": "${zones}"}
_ZONE_STATES: Final[Mapping[str, ZoneState]] = {
    "idle": "idle",
    "ready": "idle",
    "free": "idle",
    "busy": "busy",
    "playing": "busy",
}
_MAX_ERROR_TEXT: Final = 120


class BodyTemplate:
    """A JSON request body with ``${name}`` placeholders (see the module docstring)."""

    def __init__(self, template: str | Mapping[str, Any] | Sequence[Any]) -> None:
        self.template = template
        # Fail at configuration time, not during an evacuation.
        self.render({"zones": ["1"], "message": "m", "text": "t", "priority": 1, "language": "zh"})

    def render(self, values: Mapping[str, Any]) -> Any:
        """The body as a JSON-serialisable value."""
        try:
            if isinstance(self.template, str):
                encoded = {k: json.dumps(v, ensure_ascii=False) for k, v in values.items()}
                return json.loads(string.Template(self.template).substitute(encoded))
            return _substitute(self.template, values)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"bad body template {self.template!r}: {exc}") from exc


def _substitute(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        stripped = node.strip()
        if stripped.startswith("${") and stripped.endswith("}") and stripped[2:-1] in values:
            return values[stripped[2:-1]]
        return string.Template(node).substitute({k: str(v) for k, v in values.items()})
    if isinstance(node, Mapping):
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_substitute(v, values) for v in node]
    return node


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: Any
    text: str
    latency_s: float

    def error_text(self) -> str:
        if isinstance(self.body, Mapping):
            for key in ("error", "message", "reason"):
                if isinstance(self.body.get(key), str):
                    return str(self.body[key])[:_MAX_ERROR_TEXT]
        return self.text.strip()[:_MAX_ERROR_TEXT]


class HttpBroadcastDriver(BroadcastDriver):
    """A PA controller driven over HTTP/JSON. ``async with`` opens and closes its session."""

    def __init__(self, cfg: ControllerConfig) -> None:
        super().__init__(cfg)
        opts = cfg.options
        self.base_url = cfg.url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"{cfg.device_id}: url must start with http:// or https://")
        self.timeout_s = option_float(opts, "timeout_s", DEFAULT_TIMEOUT_S)
        self.play_path = str(opts.get("play_path", "/api/play"))
        self.stop_path = str(opts.get("stop_path", "/api/stop"))
        self.status_path = str(opts.get("status_path", "/api/status"))
        self.play_template = BodyTemplate(opts.get("play_template", DEFAULT_PLAY_TEMPLATE))
        self.stop_template = BodyTemplate(opts.get("stop_template", DEFAULT_STOP_TEMPLATE))
        self.priority = opts.get("priority", 1)
        self.zone_format = str(opts.get("zone_format", "str"))
        if self.zone_format not in ("str", "int"):
            raise ValueError(f"{cfg.device_id}: zone_format must be 'str' or 'int'")
        self.message_map: Mapping[str, Any] = dict(opts.get("message_map", {}))
        self.auth = str(opts.get("auth", "basic" if cfg.username else "none")).lower()
        if self.auth not in ("basic", "digest", "none"):
            raise ValueError(f"{cfg.device_id}: auth must be basic, digest or none")
        if self.auth != "none" and not cfg.username:
            raise ValueError(f"{cfg.device_id}: auth {self.auth} needs a username")
        extra = (Path(str(opts["messages_dir"])),) if opts.get("messages_dir") else ()
        self.catalog = MessageCatalog(str(opts.get("language", "zh")), extra)
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        if self._session is not None:
            return
        headers: dict[str, str] = {}
        middlewares: list[aiohttp.DigestAuthMiddleware] = []
        if self.auth == "basic":
            token = f"{self.cfg.username}:{self.cfg.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        elif self.auth == "digest":
            middlewares.append(
                aiohttp.DigestAuthMiddleware(self.cfg.username or "", self.cfg.password or "")
            )
        # One connection per request: PA calls are rare, and a kept-alive connection to a
        # controller that rebooted would turn the next evacuation call into a retry.
        self._session = aiohttp.ClientSession(
            headers=headers,
            middlewares=tuple(middlewares),
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- operations ----------------------------------------------------------------------

    async def play(self, zones: Sequence[str], message: str) -> list[PlayResult]:
        known, results = self._split_known(zones)
        started = now_utc()
        stored = self.catalog.get(message)
        if stored is not None:
            values: dict[str, Any] = {
                "message": self.message_map.get(message, message),
                "text": stored.text,
            }
            duration = wav_duration_s(stored.wav)
        else:
            values = {"message": None, "text": message}
            duration = 0.0
        values |= {"priority": self.priority, "language": self.catalog.language}
        pending = list(known)
        while pending:
            body = self.play_template.render(values | {"zones": self._targets(pending)})
            try:
                reply = await self._request("POST", self.play_path, body)
            except AdapterError as exc:
                reason = exc.message
                log.warning("%s: play %r failed: %s", self.device_id, message, reason)
                for zone in pending:
                    results[zone.id] = PlayResult(zone.id, "failed", reason, started)
                break
            if 200 <= reply.status < 300 and _ok(reply.body):
                played = _number(reply.body, "duration_s", duration)
                for zone in pending:
                    results[zone.id] = PlayResult(zone.id, "played", "", started, played)
                log.info("%s: playing %r in %s", self.device_id, message, [z.id for z in pending])
                break
            busy = self._busy_zones(reply, pending)
            if busy and len(busy) < len(pending):
                for zone in busy:
                    results[zone.id] = PlayResult(zone.id, "failed", REASON_BUSY, started)
                pending = [z for z in pending if z not in busy]
                continue
            reason = REASON_BUSY if reply.status == 409 else _http_reason(reply)
            log.warning("%s: play %r refused: %s", self.device_id, message, reason)
            for zone in pending:
                results[zone.id] = PlayResult(zone.id, "failed", reason, started)
            break
        return [results[z] for z in zones]

    async def stop(self, zones: Sequence[str]) -> None:
        targets = self._targets(self._known_zones(zones))
        body = self.stop_template.render(
            {
                "zones": targets,
                "message": None,
                "text": "",
                "priority": self.priority,
                "language": self.catalog.language,
            }
        )
        reply = await self._request("POST", self.stop_path, body)
        if not 200 <= reply.status < 300 or not _ok(reply.body):
            raise _reply_error(self.device_id, reply)
        log.info("%s: stopped %s", self.device_id, list(zones))

    async def status(self) -> BroadcastStatus:
        unknown: dict[str, ZoneState] = dict.fromkeys(self.zones, "unknown")
        try:
            reply = await self._request("GET", self.status_path, None)
        except AdapterError as exc:
            return BroadcastStatus(
                self.device_id,
                reachable=False,
                zones=unknown,
                error=exc.message,
                error_type=type(exc).__name__,
            )
        if not 200 <= reply.status < 300:
            # A 4xx means the controller is there and refuses us (credentials, path); a 5xx
            # means the service behind the address is down.
            refused = _reply_error(self.device_id, reply)
            return BroadcastStatus(
                self.device_id,
                reachable=reply.status < 500,
                latency_s=reply.latency_s,
                zones=unknown,
                error=refused.message,
                error_type=type(refused).__name__,
            )
        states: dict[str, ZoneState] = dict(unknown)
        reported = reply.body.get("zones") if isinstance(reply.body, Mapping) else None
        if isinstance(reported, Mapping):
            by_target = {str(k): str(v).lower() for k, v in reported.items()}
            for zone in self.zones.values():
                state = by_target.get(zone.address)
                if state is not None:
                    states[zone.id] = _ZONE_STATES.get(state, "unknown")
        fault = None if _ok(reply.body) else f"controller reports a fault: {reply.error_text()}"
        return BroadcastStatus(
            self.device_id,
            reachable=True,
            latency_s=reply.latency_s,
            zones=states,
            error=fault,
        )

    # --- plumbing ------------------------------------------------------------------------

    def _targets(self, zones: Sequence[ZoneConfig]) -> list[Any]:
        if self.zone_format == "int":
            return [int(z.address) for z in zones]
        return [z.address for z in zones]

    def _busy_zones(self, reply: _Reply, pending: Sequence[ZoneConfig]) -> list[ZoneConfig]:
        if reply.status != 409 or not isinstance(reply.body, Mapping):
            return []
        listed = reply.body.get("busy")
        if not isinstance(listed, list):
            return []
        names = {str(t) for t in listed}
        return [z for z in pending if z.address in names]

    async def _request(self, method: str, path: str, body: Any) -> _Reply:
        """One HTTP exchange under the timeout; transport problems become ``AdapterError``."""
        if self._session is None:
            raise DeviceUnreachable(self.device_id, "driver is not open")
        url = self.base_url + path
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self._session.request(method, url, json=body) as response,
            ):
                text = await response.text(errors="replace")
                status = response.status
        except TimeoutError as exc:
            raise DeviceUnreachable(self.device_id, "timeout") from exc
        except aiohttp.ClientConnectorError as exc:
            raise DeviceUnreachable(self.device_id, f"unreachable: {exc.os_error}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise DeviceUnreachable(
                self.device_id, f"unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        latency = loop.time() - started
        try:
            parsed: Any = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        log.debug("%s: %s %s → %d in %.3fs", self.device_id, method, path, status, latency)
        return _Reply(status, parsed, text, latency)


def _ok(body: Any) -> bool:
    return not (isinstance(body, Mapping) and body.get("ok") is False)


def _number(body: Any, key: str, default: float) -> float:
    if isinstance(body, Mapping):
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return default


def _http_reason(reply: _Reply) -> str:
    detail = reply.error_text()
    label = {401: "authentication failed", 403: "rejected", 404: "not found"}.get(reply.status)
    text = f"HTTP {reply.status}"
    if label:
        text = f"{label} (HTTP {reply.status})"
    return f"{text}: {detail}" if detail else text


def _reply_error(device_id: str, reply: _Reply) -> AdapterError:
    reason = _http_reason(reply)
    if reply.status in (401, 403):
        return AuthFailed(device_id, reason)
    if reply.status in (404, 405, 501):
        return NotSupported(device_id, reason)
    if reply.status >= 500:
        return DeviceUnreachable(device_id, reason)
    return ProtocolViolation(device_id, reason)
