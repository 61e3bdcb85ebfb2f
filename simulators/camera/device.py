"""A simulated camera: lifecycle, faults, the ONVIF dispatcher and the control API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from simulators.camera import video_loop
from simulators.camera.base import Handler
from simulators.camera.http_media import HttpMedia
from simulators.camera.model import (
    ALL_FAULTS,
    EVENT_TYPES,
    HOSTILE_FAULTS,
    VIDEO_FAULTS,
    CameraConfig,
    SoapFault,
)
from simulators.camera.onvif_events import EventServices
from simulators.camera.onvif_services import DeviceServices
from simulators.camera.rtp_session import PlayOptions
from simulators.camera.rtsp_server import RtspServer
from simulators.camera.video_loop import LoopKey
from simulators.onvif_soap import (
    SOAP_CONTENT_TYPE,
    SoapRequest,
    SoapRequestError,
    check_username_token,
    fault,
    malformed,
    padded,
    parse_request,
    response,
    unterminated,
    unterminated_size,
    wrong_namespace,
)

log = logging.getLogger(__name__)


class SimCamera(DeviceServices, EventServices, HttpMedia):
    """One simulated camera: an aiohttp server with ONVIF, snapshot, MJPEG and control routes,
    and an RTSP server."""

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        self.rtsp = RtspServer(self, config.host, config.rtsp_port, config.rtsp_session_timeout_s)
        self._ops.update(
            {
                "GetSystemDateAndTime": self._get_system_date_and_time,
                "GetServices": self._get_services,
                "GetCapabilities": self._get_capabilities,
                "GetDeviceInformation": self._get_device_information,
                "GetProfiles": self._get_profiles,
                "GetStreamUri": self._get_stream_uri,
                "GetSnapshotUri": self._get_snapshot_uri,
                "GetVideoEncoderConfiguration": self._get_video_encoder_configuration,
                "GetVideoEncoderConfigurations": self._get_video_encoder_configurations,
                "GetEventProperties": self._get_event_properties,
                "CreatePullPointSubscription": self._create_pull_point_subscription,
                "PullMessages": self._pull_messages,
                "Renew": self._renew,
                "Unsubscribe": self._unsubscribe,
                "SetSynchronizationPoint": self._set_synchronization_point,
                "GetPresets": self._get_presets,
                "GotoPreset": self._goto_preset,
                "GetRelayOutputs": self._get_relay_outputs,
                "SetRelayOutputState": self._set_relay_output_state,
            }
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving; afterwards ``port`` is the port actually bound."""
        app = web.Application(middlewares=[self._fault_middleware])
        app.router.add_post("/onvif/{path:.*}", self._soap)
        app.router.add_get("/onvif/snapshot", self._snapshot)
        app.router.add_get("/onvif/mjpeg", self._mjpeg)
        app.router.add_get("/sim/state", self._sim_state)
        app.router.add_post("/sim/faults", self._sim_faults)
        app.router.add_post("/sim/events", self._sim_events)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._started_at = asyncio.get_running_loop().time()
        address = runner.addresses[0]
        self.port = int(address[1])
        try:
            await self.rtsp.start()
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        self._running = True
        self._apply_scene_faults()
        log.debug("%s: listening on %s:%d", self.config.name, self.config.host, self.port)

    async def stop(self) -> None:
        """Stop serving; long polls and MJPEG streams end at once."""
        self._closing = True
        self._stopping.set()
        for subscription in self._subs.values():
            subscription.wakeup.set()
        if self._running:
            self._running = False
            await self.rtsp.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- library API ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def rtsp_port(self) -> int:
        """The port the RTSP server is bound to (kept while ``rtsp_refused`` closes it)."""
        return self.rtsp.port

    def rtsp_url(self, profile: str = "Profile_1", *, credentials: bool = False) -> str:
        """The stream's RTSP URL as GetStreamUri gives it (optionally with user:password@)."""
        creds = f"{self.config.username}:{self.config.password}@" if credentials else ""
        return f"rtsp://{creds}{self.config.host}:{self.rtsp.port}/{profile}"

    async def video_ready(self, profiles: Iterable[str] = ("Profile_1", "Profile_2")) -> None:
        """Encode (or load) the loops the streams play now, so a first DESCRIBE is quick."""
        for profile in profiles:
            key = self.stream_key(profile)
            if key is not None:
                await asyncio.to_thread(video_loop.get, key)

    # --- what the RTSP server plays ------------------------------------------------------

    def stream_key(self, profile: str) -> LoopKey | None:
        """The encoded loop ``profile`` plays with the current faults (None: no such stream)."""
        for token, _, width, height, fps, codec in self._encoders():
            if token != profile:
                continue
            sent = max(1, min(self.config.low_fps, fps)) if "low_fps" in self.faults else fps
            picture = frozenset(self.faults & set(VIDEO_FAULTS))
            gop = max(1, round(self.config.gop_s * sent))
            loop_frames = 2 * gop
            if "no_keyframe" in self.faults:
                gop = loop_frames = max(2, round(self.config.no_keyframe_s * sent))
            elif "frozen" in picture or "signal_loss" in picture or "black" in picture:
                # A still picture: one GOP replayed decodes to the very same pictures.
                loop_frames = gop
            if "encoder_mismatch" in self.faults:
                # Reconfigured behind ONVIF's back: the other codec, at two thirds the size.
                codec = "H265" if codec == "H264" else "H264"
                width, height = width * 2 // 3 // 2 * 2, height * 2 // 3 // 2 * 2
            return LoopKey(codec, width, height, sent, fps, gop, loop_frames, picture)
        return None

    def declared(self, profile: str) -> tuple[str, int, int, int]:
        """What ONVIF says of ``profile``: codec, width, height, frame rate."""
        for token, _, width, height, fps, codec in self._encoders():
            if token == profile:
                return codec, width, height, fps
        raise KeyError(profile)

    def play_options(self) -> PlayOptions:
        return PlayOptions(
            start_index=1 if "no_keyframe" in self.faults else 0,
            stall_after_s=self.config.stall_after_s,
        )

    def set_faults(
        self,
        set_: Iterable[str] = (),
        clear: Iterable[str] = (),
        *,
        slow_s: float | None = None,
        clock_drift_s: float | None = None,
    ) -> None:
        """Switch faults on and off; unknown names raise ``ValueError``."""
        to_set, to_clear = set(set_), set(clear)
        unknown = (to_set | to_clear) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        if slow_s is not None:
            self.slow_s = slow_s
        if clock_drift_s is not None:
            self.clock_drift_s = clock_drift_s
        self.faults -= to_clear
        self.faults |= to_set
        if "subscription_loss" in to_set:
            self.drop_subscriptions()
        self._apply_scene_faults()
        if self._running:
            self.rtsp.sync_listener()
            self.rtsp.refresh_pictures()
        self._touch()
        log.info("%s: faults now %s", self.config.name, sorted(self.faults))

    def state(self) -> dict[str, Any]:
        """Plain-JSON view of the camera, as served by ``GET /sim/state``."""
        return {
            "name": self.config.name,
            "port": self.port,
            "faults": sorted(self.faults),
            "slow_s": self.slow_s,
            "clock_drift_s": self.clock_drift_s,
            "last_preset": self.last_preset,
            "preset_calls": [
                {"at": c.at.isoformat(), "profile": c.profile, "preset": c.preset}
                for c in self.preset_calls
            ],
            "relay_state": dict(self.relay_state),
            "relay_history": [
                {"at": c.at.isoformat(), "token": c.token, "state": c.state}
                for c in self.relay_history
            ],
            "subscriptions": [
                {
                    "id": s.sid,
                    "termination": s.termination.isoformat(),
                    "queued": len(s.queue),
                    "renewals": s.renewals,
                    "pulls": s.pulls,
                }
                for s in self._subs.values()
            ],
            "subscriptions_created": self.subscriptions_created,
            "auth_rejections": self.auth_rejections,
            "calls": dict(self.calls),
        }

    # --- HTTP plumbing -------------------------------------------------------------------

    @web.middleware
    async def _fault_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/sim/"):
            if "offline" in self.faults:
                # Answer nothing and drop the connection, as an unplugged camera behind a
                # switch that still completes the TCP handshake would look to the client.
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable()
            if "slow" in self.faults:
                # Sleep, but end at once when the simulator stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.slow_s):
                        await self._stopping.wait()
        return await handler(request)

    async def _soap(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except ConnectionResetError:
            # The client gave up (a "slow" fault outlasting its timeout); nobody to answer.
            return web.Response(status=400)
        try:
            soap = parse_request(body)
        except SoapRequestError as exc:
            return self._fault_response(SoapFault("Sender", "ter:WellFormed", str(exc)))
        self.calls[soap.name] += 1
        handler = self._ops.get(soap.name)
        try:
            return self._hostile(await self._dispatch(soap, handler, request))
        finally:
            self._touch()

    def _hostile(self, answer: web.Response) -> web.Response:
        """Apply the hostile-answer faults to a SOAP response (see ``HOSTILE_FAULTS``)."""
        hostile = self.faults & set(HOSTILE_FAULTS)
        if not hostile or not isinstance(answer.body, bytes):
            return answer
        body = answer.body
        if "wrong_namespace" in hostile:
            body = wrong_namespace(body)
        if "malformed_xml" in hostile:
            body = malformed(body)
        if "huge_body" in hostile:
            # The opening of a real answer, then one element whose text never ends: a camera
            # (or whatever else answers on its port) streaming garbage until the limit. Sent
            # in chunks with its length announced, so the simulator never holds it whole.
            size = self.config.huge_body_bytes
            headers = {**_SOAP_HEADERS, "Content-Length": str(unterminated_size(body, size))}
            chunks = unterminated(body, size)
            return web.Response(status=200, body=_stream(chunks), headers=headers)
        if "huge_answer" in hostile:
            # A correct answer that is simply enormous: only a size limit can refuse it. It is
            # streamed without a length, so the client cannot tell its size in advance.
            chunks = padded(body, self.config.huge_body_bytes)
            return web.Response(status=200, body=_stream(chunks), headers=_SOAP_HEADERS)
        return web.Response(status=200, body=body, headers=_SOAP_HEADERS)

    async def _dispatch(
        self, soap: SoapRequest, handler: Handler | None, request: web.Request
    ) -> web.Response:
        try:
            if handler is None:
                raise SoapFault("Receiver", "ter:ActionNotSupported", f"{soap.name} not supported")
            if soap.name != "GetSystemDateAndTime":
                self._authenticate(soap)
            result = await handler(soap, request)
        except SoapFault as exc:
            return self._fault_response(exc)
        body = response(result)
        if "raw_ampersand" in self.faults:
            # Firmware that writes names without escaping them; lxml's recovery reads past it.
            body = body.replace(b"<tds:Manufacturer>", b"<tds:Manufacturer>R&D ")
        return web.Response(body=body, content_type=None, headers=_SOAP_HEADERS)

    def _authenticate(self, soap: SoapRequest) -> None:
        if "auth_failure" in self.faults:
            reason: str | None = "credentials rejected"
        else:
            reason = check_username_token(
                soap.header,
                self.config.username,
                self.config.password,
                self.now(),
                timedelta(seconds=self.config.auth_window_s),
            )
        if reason is not None:
            self.auth_rejections += 1
            log.debug("%s: %s rejected: %s", self.config.name, soap.name, reason)
            raise SoapFault("Sender", "ter:NotAuthorized", "Sender not Authorized")

    @staticmethod
    def _fault_response(exc: SoapFault) -> web.Response:
        status = 400 if exc.code == "Sender" else 500
        return web.Response(
            status=status,
            body=fault(exc.code, exc.subcode, exc.reason),
            headers=_SOAP_HEADERS,
        )

    # --- control API ---------------------------------------------------------------------

    async def _sim_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _sim_faults(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            self.set_faults(
                payload.get("set", []),
                payload.get("clear", []),
                slow_s=_opt_float(payload.get("slow_s")),
                clock_drift_s=_opt_float(payload.get("clock_drift_s")),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state())

    async def _sim_events(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            kind = str(payload["kind"])
            if kind not in EVENT_TYPES:
                raise ValueError(f"unknown event kind {kind!r}; known: {sorted(EVENT_TYPES)}")
            source = payload.get("source")
            count = int(payload.get("count", 0))
            if count > 0:
                self.burst(kind, count, source=source)
            else:
                self.emit(kind, bool(payload.get("active", True)), source=source)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state())


_SOAP_HEADERS = {"Content-Type": SOAP_CONTENT_TYPE}


async def _stream(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _opt_float(value: object) -> float | None:
    return None if value is None else float(str(value))
