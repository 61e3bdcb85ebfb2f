"""Simulated public-address controller: an HTTP/JSON API and a SIP paging endpoint.

HTTP API (the default layout the HTTP driver expects)::

    POST /api/play    {"zones": ["1"], "message": "evacuation", "text": "...", "priority": 1}
                      200 {"ok": true, "played": [...]}; 409 {"ok": false, "busy": [...]};
                      404 unknown zone; 403 reject; 401 without valid credentials
    POST /api/stop    {"zones": ["1"]}
    GET  /api/status  {"ok": true, "zones": {"1": "idle", "2": "busy"}}

Control (also served on a separate control port, so it stays reachable while "offline")::

    GET  /sim/plays   every play recorded (HTTP and SIP)
    GET  /sim/faults, POST /sim/faults  {"offline": true, "busy": ["2"], "slow_s": 3,
                                         "reject": false}   (partial updates)

Faults: ``offline`` closes the API port (connections refused) and silences SIP; ``busy``
zones answer 409 / 486; ``slow_s`` delays every API answer and every INVITE answer;
``reject`` answers 403 to plays and INVITEs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

from simulators.sip_endpoint import Faults, Play, SipPagingEndpoint, now
from simulators.sip_wire import check_digest

log = logging.getLogger(__name__)

HTTP_AUTH_MODES: Final = ("none", "basic", "digest")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BroadcastSimulator:
    """HTTP controller + SIP paging endpoint over the same zones, faults and play log."""

    def __init__(
        self,
        zones: Sequence[str] = ("1", "2", "3"),
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        sip_port: int = 0,
        control_port: int = 0,
        username: str | None = None,
        password: str | None = None,
        http_auth: str = "none",
        sip_auth: bool = False,
        codecs: Sequence[str] = ("PCMU", "PCMA"),
        http_play_s: float = 0.0,
    ) -> None:
        if http_auth not in HTTP_AUTH_MODES:
            raise ValueError(f"http_auth must be one of {HTTP_AUTH_MODES}")
        if (http_auth != "none" or sip_auth) and not username:
            raise ValueError("authentication needs a username")
        self.zones = [str(z) for z in zones]
        self.host = host
        self.http_port = http_port
        self.control_port = control_port
        self.username = username
        self._password = password
        self.http_auth = http_auth
        self.http_play_s = http_play_s
        self.faults = Faults()
        self.plays: list[Play] = []
        self.requests: list[tuple[str, str, Any]] = []
        """Every API request received: (method, path, JSON body or None)."""
        self.sip = SipPagingEndpoint(
            self.zones,
            self.faults,
            self.plays,
            host=host,
            port=sip_port,
            username=username if sip_auth else None,
            password=password,
            codecs=codecs,
        )
        self._http_active: dict[str, tuple[Play, asyncio.TimerHandle | None]] = {}
        self._nonces: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._api_site: web.TCPSite | None = None

    @property
    def sip_port(self) -> int:
        return self.sip.port

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/api/play", self._play)
        app.router.add_post("/api/stop", self._stop)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/sim/plays", self._sim_plays)
        app.router.add_get("/sim/faults", self._sim_faults_get)
        app.router.add_post("/sim/faults", self._sim_faults_post)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            control = web.TCPSite(runner, self.host, self.control_port)
            await control.start()
            self.control_port = int(runner.addresses[-1][1])
            await self._start_api(runner)
            await self.sip.__aenter__()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info(
            "broadcast simulator: HTTP %s, SIP udp %s:%d, control %s, zones %s",
            self.http_url,
            self.host,
            self.sip_port,
            self.control_url,
            ",".join(self.zones),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for _, timer in self._http_active.values():
            if timer is not None:
                timer.cancel()
        self._http_active.clear()
        await self.sip.__aexit__(exc_type, exc, tb)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._api_site = None

    async def _start_api(self, runner: web.AppRunner) -> None:
        site = web.TCPSite(runner, self.host, self.http_port)
        await site.start()
        self._api_site = site
        if self.http_port == 0:
            # The API site is always the newest one the runner holds.
            self.http_port = int(runner.addresses[-1][1])

    # --- faults ---------------------------------------------------------------------------

    async def set_faults(
        self,
        *,
        offline: bool | None = None,
        busy: Sequence[str] | None = None,
        slow_s: float | None = None,
        reject: bool | None = None,
    ) -> Faults:
        """Change fault switches; ``offline`` really closes (and reopens) the API port."""
        if busy is not None:
            self.faults.busy = {str(z) for z in busy}
        if slow_s is not None:
            self.faults.slow_s = max(0.0, float(slow_s))
        if reject is not None:
            self.faults.reject = reject
        if offline is not None and offline != self.faults.offline:
            self.faults.offline = offline
            if offline and self._api_site is not None:
                await self._api_site.stop()
                self._api_site = None
            elif not offline and self._runner is not None:
                await self._start_api(self._runner)
        log.info("broadcast simulator faults: %s", self.faults.to_json())
        return self.faults

    def zone_states(self) -> dict[str, str]:
        busy = set(self.faults.busy) | self.sip.busy_zones() | set(self._http_active)
        return {zone: "busy" if zone in busy else "idle" for zone in self.zones}

    # --- HTTP -----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path.startswith("/sim/"):
            return await handler(request)
        if self.faults.offline:
            # A connection opened before the fault: behave like a controller that went away.
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPServiceUnavailable()
        if self.faults.slow_s > 0:
            await asyncio.sleep(self.faults.slow_s)
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)  # the client gave up; do nothing
        if not self._authorized(request):
            return self._challenge()
        if self.faults.reject:
            return web.json_response({"ok": False, "error": "rejected"}, status=403)
        return await handler(request)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        if self.http_auth == "none":
            return True
        if self.http_auth == "basic":
            if not header or not header.lower().startswith("basic "):
                return False
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return user == self.username and secrets.compare_digest(
                password.encode(), (self._password or "").encode()
            )
        return check_digest(
            header,
            method=request.method,
            username=self.username or "",
            password=self._password or "",
            realm="mallsim",
            nonces=self._nonces,
        )

    def _challenge(self) -> web.Response:
        if self.http_auth == "basic":
            value = 'Basic realm="mallsim"'
        else:
            nonce = secrets.token_hex(16)
            self._nonces.add(nonce)
            value = f'Digest realm="mallsim", nonce="{nonce}", qop="auth", algorithm=MD5'
        return web.json_response(
            {"ok": False, "error": "unauthorized"},
            status=401,
            headers={"WWW-Authenticate": value},
        )

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise web.HTTPBadRequest(text='{"ok": false, "error": "body is not JSON"}') from exc
        self.requests.append((request.method, request.path, body))
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='{"ok": false, "error": "body is not an object"}')
        return body

    def _zones_of(self, body: dict[str, Any]) -> list[str]:
        zones = body.get("zones")
        if not isinstance(zones, list) or not zones:
            raise web.HTTPBadRequest(text='{"ok": false, "error": "zones must be a list"}')
        return [str(z) for z in zones]

    async def _play(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        zones = self._zones_of(body)
        unknown = [z for z in zones if z not in self.zones]
        if unknown:
            return web.json_response(
                {"ok": False, "error": "unknown zone", "zones": unknown}, status=404
            )
        states = self.zone_states()
        busy = [z for z in zones if states[z] == "busy"]
        if busy:
            return web.json_response({"ok": False, "error": "busy", "busy": busy}, status=409)
        if not body.get("message") and not body.get("text"):
            return web.json_response({"ok": False, "error": "nothing to play"}, status=400)
        for zone in zones:
            play = Play(
                zone=zone,
                via="http",
                started_at=now(),
                message=body.get("message"),
                text=body.get("text"),
                priority=body.get("priority"),
            )
            self.plays.append(play)
            if self.http_play_s > 0:
                loop = asyncio.get_running_loop()
                timer = loop.call_later(self.http_play_s, self._end_http_play, zone)
                self._http_active[zone] = (play, timer)
            else:
                play.ended_at = play.started_at
        return web.json_response({"ok": True, "played": zones})

    def _end_http_play(self, zone: str) -> None:
        entry = self._http_active.pop(zone, None)
        if entry is not None:
            play, timer = entry
            if timer is not None:
                timer.cancel()
            play.ended_at = now()

    async def _stop(self, request: web.Request) -> web.Response:
        zones = self._zones_of(await self._json(request))
        for zone in zones:
            self._end_http_play(zone)
        return web.json_response({"ok": True, "stopped": zones})

    async def _status(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, None))
        return web.json_response({"ok": True, "zones": self.zone_states()})

    async def _sim_plays(self, request: web.Request) -> web.Response:
        return web.json_response([p.to_json() for p in self.plays])

    async def _sim_faults_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.to_json())

    async def _sim_faults_post(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("not an object")
            busy = body.get("busy")
            faults = await self.set_faults(
                offline=None if body.get("offline") is None else bool(body["offline"]),
                busy=None if busy is None else [str(z) for z in busy],
                slow_s=None if body.get("slow_s") is None else float(body["slow_s"]),
                reject=None if body.get("reject") is None else bool(body["reject"]),
            )
        except (ValueError, TypeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response(faults.to_json())


# --- command line -----------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``mallsim broadcast``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=0, help="HTTP API port (0: any)")
    parser.add_argument("--sip-port", type=int, default=0, help="SIP UDP port (0: any)")
    parser.add_argument("--control-port", type=int, default=0, help="/sim/ control port (0: any)")
    parser.add_argument("--zones", default="1,2,3", help="comma-separated zone numbers")
    parser.add_argument("--user", help="username the controller accepts (default: no auth)")
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="environment variable holding the password (never on the command line)",
    )
    parser.add_argument("--http-auth", choices=HTTP_AUTH_MODES, default=None)
    parser.add_argument("--sip-auth", action="store_true", help="challenge INVITEs (digest)")
    parser.add_argument("--codecs", default="PCMU,PCMA", help="codecs the SIP side accepts")
    parser.add_argument("--busy", default="", help="zones that start busy")
    parser.add_argument("--slow-s", type=float, default=0.0, help="answer delay at start")
    parser.add_argument("--offline", action="store_true", help="start offline")
    parser.add_argument("--reject", action="store_true", help="start rejecting")


async def run(args: argparse.Namespace) -> int:
    """Run until interrupted; prints the addresses it serves."""
    password = os.environ.get(args.password_env) if args.password_env else None
    if args.user and not password:
        log.error("--user needs --password-env naming a variable that is set")
        return 2
    http_auth = args.http_auth or ("basic" if args.user else "none")
    zones = [z.strip() for z in str(args.zones).split(",") if z.strip()]
    codecs = [c.strip().upper() for c in str(args.codecs).split(",") if c.strip()]
    if not zones or any(c not in ("PCMU", "PCMA") for c in codecs):
        log.error("need at least one zone, and codecs from PCMU,PCMA")
        return 2
    sim = BroadcastSimulator(
        zones,
        host=args.host,
        http_port=args.http_port,
        sip_port=args.sip_port,
        control_port=args.control_port,
        username=args.user,
        password=password,
        http_auth=http_auth,
        sip_auth=bool(args.sip_auth),
        codecs=codecs,
    )
    async with sim:
        await sim.set_faults(
            offline=bool(args.offline),
            busy=[z.strip() for z in str(args.busy).split(",") if z.strip()],
            slow_s=args.slow_s,
            reject=bool(args.reject),
        )
        print(
            f"http\t{sim.http_url}\nsip\tsip:{sim.host}:{sim.sip_port}\n"
            f"control\t{sim.control_url}/sim/faults",
            flush=True,
        )
        await asyncio.Event().wait()
    return 0


__all__ = ["BroadcastSimulator", "Faults", "Play", "configure_parser", "run"]
