"""ONVIF camera driver: one ``OnvifCamera`` per device, built on onvif-zeep-async.

Every device call runs under its own ``asyncio.timeout`` (the library's own default is 90 s)
and every library exception is converted into an ``AdapterError`` carrying the device id at
this boundary. Parsed WSDL documents are shared by all cameras in the process (the library
keeps them in a module-level cache keyed by file path); this module makes sure only the first
camera parses each document, so connecting the 500th camera costs a small fraction of the
first.

Events (PullPoint) live in ``adapters.onvif.events`` and should be started last, once the
camera is connected: some cameras slow down after a subscription is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
from onvif import ONVIFCamera

from adapters.errors import (
    AdapterError,
    AuthFailed,
    DeviceUnreachable,
    NotSupported,
    ProtocolViolation,
)
from adapters.onvif.faults import OnvifFault, convert
from adapters.onvif.records import (
    CameraProbe,
    DeviceInfo,
    EncoderSettings,
    ProfileSummary,
    PtzPreset,
    RelayOutput,
    VideoProfile,
    camera_datetime,
    deviceio_xaddr,
    duration_s,
    encoder_settings,
    opt_str,
    refusal_clock_offset,
    strip_uri_credentials,
)
from adapters.onvif.rtsp import describe
from adapters.onvif.transport import (
    DEFAULT_MAX_ANSWER_BYTES,
    AnswerNotes,
    CappedONVIFCamera,
    watching_answers,
)

__all__ = [
    "NS_DEVICEIO",
    "NS_EVENTS",
    "NS_PTZ",
    "NS_PULLPOINT",
    "PULLPOINT_PORT",
    "CameraProbe",
    "DeviceInfo",
    "EncoderSettings",
    "OnvifCamera",
    "OnvifFault",
    "ProfileSummary",
    "PtzPreset",
    "RelayOutput",
    "VideoProfile",
    "strip_uri_credentials",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_CONNECT_TIMEOUT_S: Final = 30.0
CLOCK_TOLERANCE_S: Final = 2.0
"""Above this offset the driver signs requests with the camera's time instead of its own."""
LOGIN_CLOCK_TOLERANCE_S: Final = 60.0
"""A refused login from a camera whose clock is further off than this is blamed on the clock
(cameras accept WS-Security timestamps within a few seconds to five minutes)."""

NS_DEVICEIO: Final = "http://www.onvif.org/ver10/deviceIO/wsdl"
NS_EVENTS: Final = "http://www.onvif.org/ver10/events/wsdl"
NS_PTZ: Final = "http://www.onvif.org/ver20/ptz/wsdl"
NS_PULLPOINT: Final = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
PULLPOINT_PORT: Final = "PullPointSubscription"

# --- WSDL document sharing ------------------------------------------------------------------

# The library caches parsed WSDL documents per file path, but cameras connecting concurrently
# before the first parse has finished would each parse the same documents again (seconds of
# CPU and tens of MB each). The first creation of each service kind is therefore serialised;
# after that every camera reuses the cached documents without waiting.
_WARM_SERVICES: set[str] = set()
_WARM_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _warm_lock(service: str) -> asyncio.Lock:
    locks = _WARM_LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(service, asyncio.Lock())


# --- the driver -----------------------------------------------------------------------------


class OnvifCamera:
    """One ONVIF camera. ``async with`` connects (unless ``lazy``) and closes all sessions.

    Connecting reads the camera clock unauthenticated, discovers service addresses (GetServices,
    falling back to GetCapabilities for older firmware) and reads the device information.
    Every method raises only ``AdapterError`` subclasses (plus ``CancelledError``).
    """

    def __init__(
        self,
        device_id: str,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        lazy: bool = False,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.device_id = device_id
        self.host = host
        self.port = port
        self._username = username
        self._password = password
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._lazy = lazy
        self.max_answer_bytes = max_answer_bytes
        self._client: ONVIFCamera | None = None
        self._connect_lock = asyncio.Lock()
        self.device_info: DeviceInfo | None = None
        self.clock_offset_s: float | None = None
        """Camera clock minus hub clock, seconds, from the last measurement."""
        self.latency_s: float | None = None
        self.connect_time_s: float | None = None

    def __repr__(self) -> str:
        return f"OnvifCamera({self.device_id!r}, {self.host}:{self.port})"

    async def __aenter__(self) -> Self:
        if not self._lazy:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._client is not None

    # --- connection ----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect if not connected; raises ``AdapterError`` and leaves nothing open on failure."""
        async with self._connect_lock:
            if self._client is not None:
                return
            loop = asyncio.get_running_loop()
            started = loop.time()
            client = CappedONVIFCamera(
                self.host,
                self.port,
                self._username,
                self._password,
                # The library's optional sqlite cache only serves remote WSDL downloads, which
                # never happen with the bundled WSDL files; skip its blocking file I/O.
                no_cache=True,
                max_answer_bytes=self.max_answer_bytes,
            )
            self._client = client
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    offset = await self.measure_clock_offset()
                    # Digest auth embeds a timestamp that cameras check against their own
                    # clock, so sign with the camera's time when the clocks disagree.
                    client.adjust_time = abs(offset) > CLOCK_TOLERANCE_S
                    await self._guard("update service addresses", self._update_xaddrs(client))
                    self.device_info = await self.get_device_information()
            except BaseException as exc:
                self._client = None
                await self._close_client(client)
                if isinstance(exc, TimeoutError):
                    raise DeviceUnreachable(
                        self.device_id, f"connect took longer than {self.connect_timeout_s}s"
                    ) from exc
                raise
            self.connect_time_s = loop.time() - started
            log.debug(
                "%s: connected to %s:%d in %.3fs (clock offset %.1fs)",
                self.device_id,
                self.host,
                self.port,
                self.connect_time_s,
                offset,
            )

    async def _update_xaddrs(self, client: ONVIFCamera) -> None:
        async with self._first_parse("devicemgmt"):
            await client.update_xaddrs()
        if NS_DEVICEIO not in client.xaddrs:
            # GetCapabilities lists DeviceIO only under Extension, which the library does not
            # map; cameras without GetServices would otherwise look like they had no relays.
            capabilities = await client.get_capabilities() or {}
            xaddr = deviceio_xaddr(capabilities.get("Extension"))
            if xaddr:
                client.xaddrs[NS_DEVICEIO] = xaddr

    async def close(self) -> None:
        """Close every HTTP session; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await self._close_client(client)

    async def _close_client(self, client: ONVIFCamera) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await client.close()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.debug("%s: error while closing sessions: %s", self.device_id, exc)

    def has_service(self, namespace: str) -> bool:
        """Whether the camera listed the service (``NS_EVENTS``, ``NS_PTZ``, ...) when connected."""
        return namespace in self._require().xaddrs

    # --- generic call --------------------------------------------------------------------

    def _require(self) -> ONVIFCamera:
        if self._client is None:
            raise DeviceUnreachable(self.device_id, "not connected")
        return self._client

    @contextlib.asynccontextmanager
    async def _first_parse(self, service: str) -> AsyncIterator[None]:
        if service in _WARM_SERVICES:
            yield
            return
        async with _warm_lock(service):
            yield
            _WARM_SERVICES.add(service)

    async def _service(self, name: str, port_type: str | None) -> Any:
        client = self._require()
        async with self._first_parse(name):
            return await client.create_onvif_service(name, port_type=port_type)

    async def call(
        self,
        service: str,
        operation: str,
        params: Any = None,
        *,
        timeout_s: float | None = None,
        port_type: str | None = None,
    ) -> Any:
        """Call one ONVIF operation under a timeout; library errors become ``AdapterError``.

        ``service`` is the library's service name (``devicemgmt``, ``media``, ``ptz``,
        ``deviceio``, ``events``, ``pullpoint``, ``subscription``); an ``authless_`` prefix on
        ``operation`` sends it without WS-Security.
        """
        what = f"{service}.{operation}"

        async def invoke() -> Any:
            svc = await self._service(service, port_type)
            try:
                method = getattr(svc, operation)
            except AttributeError as exc:
                raise NotSupported(self.device_id, f"{what}: no such operation") from exc
            return await method(params)

        return await self._guard(what, invoke(), timeout_s)

    async def _guard(self, what: str, awaitable: Any, timeout_s: float | None = None) -> Any:
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                return await awaitable
        except AdapterError:
            raise
        except TimeoutError as exc:
            raise DeviceUnreachable(self.device_id, f"{what}: no answer within {limit}s") from exc
        except Exception as exc:
            raise convert(self.device_id, what, exc) from exc

    # --- device --------------------------------------------------------------------------

    async def measure_clock_offset(self) -> float:
        """Camera clock minus hub clock in seconds, measured around one round trip."""
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            try:
                answer = await self.call("devicemgmt", "authless_GetSystemDateAndTime")
            except (AuthFailed, OnvifFault):
                # Some firmware wants authentication even for the clock.
                sent = loop.time()
                answer = await self.call("devicemgmt", "GetSystemDateAndTime")
        except ProtocolViolation as exc:
            # Whether the library fails while reading the broken answer or after it, the
            # finding is the same one: the clock could not be read.
            raise ProtocolViolation(
                self.device_id, f"unreadable camera clock: {exc.message}", violation=exc.violation
            ) from exc
        received = loop.time()
        try:
            camera_now = camera_datetime(answer)
        except (AttributeError, ValueError, TypeError) as exc:
            raise ProtocolViolation(self.device_id, f"unreadable camera clock: {exc}") from exc
        round_trip = received - sent
        hub_mid = datetime.now(UTC) - timedelta(seconds=round_trip / 2)
        self.latency_s = round_trip
        self.clock_offset_s = (camera_now - hub_mid).total_seconds()
        return self.clock_offset_s

    async def get_device_information(self) -> DeviceInfo:
        answer = await self.call("devicemgmt", "GetDeviceInformation")
        return DeviceInfo(
            manufacturer=opt_str(getattr(answer, "Manufacturer", None)),
            model=opt_str(getattr(answer, "Model", None)),
            firmware=opt_str(getattr(answer, "FirmwareVersion", None)),
            serial=opt_str(getattr(answer, "SerialNumber", None)),
            hardware_id=opt_str(getattr(answer, "HardwareId", None)),
        )

    # --- media ---------------------------------------------------------------------------

    async def get_profiles(self) -> list[VideoProfile]:
        answer = await self.call("media", "GetProfiles")
        profiles = []
        for profile in answer or []:
            source = getattr(profile, "VideoSourceConfiguration", None)
            encoder = getattr(profile, "VideoEncoderConfiguration", None)
            profiles.append(
                VideoProfile(
                    token=str(profile.token),
                    name=opt_str(getattr(profile, "Name", None)),
                    video_source_token=opt_str(getattr(source, "SourceToken", None)),
                    encoder=encoder_settings(encoder) if encoder is not None else None,
                    has_ptz=getattr(profile, "PTZConfiguration", None) is not None,
                )
            )
        return profiles

    async def get_encoder_settings(self, configuration_token: str) -> EncoderSettings:
        answer = await self.call(
            "media", "GetVideoEncoderConfiguration", {"ConfigurationToken": configuration_token}
        )
        return encoder_settings(answer)

    async def get_stream_uri(self, profile_token: str, *, protocol: str = "RTSP") -> str:
        """Stream URI for a profile (``RTSP`` or ``HTTP``), without embedded credentials."""
        answer = await self.call(
            "media",
            "GetStreamUri",
            {
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": protocol}},
                "ProfileToken": profile_token,
            },
        )
        uri = strip_uri_credentials(opt_str(getattr(answer, "Uri", None)))
        if not uri:
            raise ProtocolViolation(self.device_id, "GetStreamUri returned no Uri")
        return uri

    async def get_snapshot_uri(self, profile_token: str) -> str | None:
        """Snapshot URI without embedded credentials, or None if the camera has none."""
        try:
            answer = await self.call("media", "GetSnapshotUri", {"ProfileToken": profile_token})
        except NotSupported:
            return None
        return strip_uri_credentials(opt_str(getattr(answer, "Uri", None))) or None

    # --- PTZ -----------------------------------------------------------------------------

    async def get_presets(self, profile_token: str) -> list[PtzPreset]:
        answer = await self.call("ptz", "GetPresets", {"ProfileToken": profile_token})
        return [PtzPreset(str(p.token), opt_str(getattr(p, "Name", None))) for p in answer or []]

    async def goto_preset(self, profile_token: str, preset_token: str) -> None:
        await self.call(
            "ptz", "GotoPreset", {"ProfileToken": profile_token, "PresetToken": preset_token}
        )

    # --- relays --------------------------------------------------------------------------

    async def get_relay_outputs(self) -> list[RelayOutput]:
        answer = await self.call("deviceio", "GetRelayOutputs")
        relays = []
        for relay in answer or []:
            props = getattr(relay, "Properties", None)
            relays.append(
                RelayOutput(
                    token=str(relay.token),
                    mode=opt_str(getattr(props, "Mode", None)),
                    idle_state=opt_str(getattr(props, "IdleState", None)),
                    delay_s=duration_s(getattr(props, "DelayTime", None)),
                )
            )
        return relays

    async def set_relay_output(self, token: str, active: bool) -> None:
        await self.call(
            "deviceio",
            "SetRelayOutputState",
            {"RelayOutputToken": token, "LogicalState": "active" if active else "inactive"},
        )

    async def pulse_relay_output(self, token: str, seconds: float) -> None:
        """Activate a relay for ``seconds``, then deactivate it, even if cancelled meanwhile."""
        try:
            await self.set_relay_output(token, True)
            await asyncio.sleep(seconds)
        except BaseException:
            # Cancelled or failed part-way: the activation may have reached the device, and a
            # siren or door strike must not stay on. The original exception wins.
            try:
                await self.set_relay_output(token, False)
            except AdapterError as exc:
                log.warning("%s: could not release relay %s: %s", self.device_id, token, exc)
            raise
        await self.set_relay_output(token, False)

    # --- events support ------------------------------------------------------------------

    def set_pullpoint_address(self, address: str) -> None:
        """Point the ``pullpoint``/``subscription`` services at a new subscription address."""
        self._require().xaddrs[NS_PULLPOINT] = address

    # --- health --------------------------------------------------------------------------

    async def probe(self) -> CameraProbe:
        """Check the camera end to end; never raises ``AdapterError`` (it is in ``error``).

        A ``ProtocolViolation`` says what was wrong with the answer (``violation``).
        """
        with watching_answers() as answers:
            try:
                return await self._probe()
            except AdapterError as exc:
                return self._failed_probe(exc, answers)

    async def liveness(self, previous: CameraProbe) -> CameraProbe:
        """The cheap check of a camera :meth:`probe` found well (``previous``): its clock
        (one SOAP call, unauthenticated where the camera allows it) and a DESCRIBE of the
        stream ``previous`` found, which needs the credentials. A camera that does not answer
        either is found as by :meth:`probe`. Device information, profiles and URIs are carried
        over from ``previous``: a full probe refreshes them (the health service runs one every
        video interval). A stream that does not answer the DESCRIBE makes it the full probe
        at once, which tells what changed (a refused login may be a new password, which the
        ONVIF login then refuses too; the stream URI may have moved). Never raises
        ``AdapterError``."""
        with watching_answers() as answers:
            try:
                await self.connect()
                offset = await self.measure_clock_offset()
                latency = self.latency_s
                stream_error, stream_error_type = await self._describe(previous.stream_uri)
                if stream_error is not None:
                    return await self._probe()
            except AdapterError as exc:
                return self._failed_probe(exc, answers)
        return replace(
            previous,
            latency_s=latency,
            clock_offset_s=offset,
            stream_error=stream_error,
            stream_error_type=stream_error_type,
        )

    async def _describe(self, stream_uri: str | None) -> tuple[str | None, str | None]:
        """(error, error type) of a DESCRIBE of ``stream_uri``; (None, None) if it answered or
        is not an RTSP stream. The camera answers ONVIF: its stream is a finding, not an
        outage."""
        if not stream_uri or not stream_uri.startswith("rtsp"):
            return None, None
        try:
            await describe(
                stream_uri,
                device_id=self.device_id,
                username=self._username or None,
                password=self._password,
                timeout=self.timeout_s,
            )
        except AdapterError as exc:
            return exc.message, type(exc).__name__
        return None, None

    async def _probe(self) -> CameraProbe:
        await self.connect()
        offset = await self.measure_clock_offset()
        latency = self.latency_s
        info = self.device_info
        profiles = await self.get_profiles()
        stream_uri = snapshot_uri = None
        if profiles:
            stream_uri = await self.get_stream_uri(profiles[0].token)
            snapshot_uri = await self.get_snapshot_uri(profiles[0].token)
        stream_error, stream_error_type = await self._describe(stream_uri)
        return CameraProbe(
            device_id=self.device_id,
            reachable=True,
            latency_s=latency,
            clock_offset_s=offset,
            manufacturer=info.manufacturer if info else None,
            model=info.model if info else None,
            firmware=info.firmware if info else None,
            profiles=tuple(
                ProfileSummary(
                    token=p.token,
                    name=p.name,
                    encoding=p.encoder.encoding if p.encoder else None,
                    width=p.encoder.width if p.encoder else None,
                    height=p.encoder.height if p.encoder else None,
                    fps_limit=p.encoder.fps_limit if p.encoder else None,
                )
                for p in profiles
            ),
            stream_uri=stream_uri,
            snapshot_uri=snapshot_uri,
            stream_error=stream_error,
            stream_error_type=stream_error_type,
        )

    def _failed_probe(self, exc: AdapterError, answers: AnswerNotes) -> CameraProbe:
        message, violation = exc.message, None
        error_type = type(exc).__name__
        if isinstance(exc, AuthFailed):
            skew = refusal_clock_offset(answers.refusal_date)
            if skew is not None and abs(skew) > LOGIN_CLOCK_TOLERANCE_S:
                # WS-Security logins carry a timestamp: a camera whose clock is this far
                # off refuses the right password. Its refusal tells its clock.
                self.clock_offset_s = skew
                error_type = "ClockRefused"
                message = (
                    f"{message}; the camera's clock is off by {skew:+.0f} s "
                    "(HTTP Date of its refusal), so it refuses time-stamped logins"
                )
        if isinstance(exc, ProtocolViolation):
            violation = exc.violation
            if violation == "invalid" and answers.not_xml is not None:
                # The library recovered what it could of a broken answer and something
                # was missing from it: the broken XML is the cause worth reporting.
                violation = "not_xml"
                message = f"{answers.not_xml} ({message})"
        return CameraProbe(
            device_id=self.device_id,
            reachable=not isinstance(exc, DeviceUnreachable),
            latency_s=self.latency_s,
            clock_offset_s=self.clock_offset_s,
            error=message,
            error_type=error_type,
            violation=violation,
        )
