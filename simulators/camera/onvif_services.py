"""ONVIF Device, Media, PTZ and DeviceIO services of a simulated camera."""

from __future__ import annotations

import hashlib
import logging
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from aiohttp import web

from simulators.camera.base import CameraBase
from simulators.camera.model import (
    SERVICE_PATHS,
    PresetCall,
    RelayChange,
    SoapFault,
)
from simulators.onvif_soap import (
    SoapRequest,
    child_text,
    find_local,
    q,
    sub,
)

log = logging.getLogger(__name__)


class DeviceServices(CameraBase):
    """ONVIF Device, Media, PTZ and DeviceIO operations."""

    # --- Device service ------------------------------------------------------------------

    async def _get_system_date_and_time(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        now = self.now()
        out = ET.Element(q("tds", "GetSystemDateAndTimeResponse"))
        sdt = sub(out, "tds:SystemDateAndTime")
        sub(sdt, "tt:DateTimeType", "NTP")
        sub(sdt, "tt:DaylightSavings", "false")
        sub(sub(sdt, "tt:TimeZone"), "tt:TZ", "UTC0")
        for tag in ("tt:UTCDateTime", "tt:LocalDateTime"):
            dt_el = sub(sdt, tag)
            time_el = sub(dt_el, "tt:Time")
            sub(time_el, "tt:Hour", str(now.hour))
            sub(time_el, "tt:Minute", str(now.minute))
            sub(time_el, "tt:Second", str(now.second))
            date_el = sub(dt_el, "tt:Date")
            sub(date_el, "tt:Year", str(now.year))
            sub(date_el, "tt:Month", str(now.month))
            sub(date_el, "tt:Day", str(now.day))
        return out

    async def _get_services(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        if "no_get_services" in self.faults:
            raise SoapFault("Receiver", "ter:ActionNotSupported", "GetServices not implemented")
        out = ET.Element(q("tds", "GetServicesResponse"))
        host = self._host(request)
        for path, namespace, (major, minor) in SERVICE_PATHS.values():
            service = sub(out, "tds:Service")
            sub(service, "tds:Namespace", namespace)
            sub(service, "tds:XAddr", f"http://{host}{path}")
            version = sub(service, "tds:Version")
            sub(version, "tt:Major", str(major))
            sub(version, "tt:Minor", str(minor))
        return out

    async def _get_capabilities(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        host = self._host(request)
        out = ET.Element(q("tds", "GetCapabilitiesResponse"))
        caps = sub(out, "tds:Capabilities")
        sub(sub(caps, "tt:Device"), "tt:XAddr", f"http://{host}{SERVICE_PATHS['device'][0]}")
        events = sub(caps, "tt:Events")
        sub(events, "tt:XAddr", f"http://{host}{SERVICE_PATHS['events'][0]}")
        sub(events, "tt:WSSubscriptionPolicySupport", "false")
        sub(events, "tt:WSPullPointSupport", "true")
        sub(events, "tt:WSPausableSubscriptionManagerInterfaceSupport", "false")
        media = sub(caps, "tt:Media")
        sub(media, "tt:XAddr", f"http://{host}{SERVICE_PATHS['media'][0]}")
        streaming = sub(media, "tt:StreamingCapabilities")
        sub(streaming, "tt:RTPMulticast", "false")
        sub(streaming, "tt:RTP_TCP", "true")
        sub(streaming, "tt:RTP_RTSP_TCP", "true")
        sub(sub(caps, "tt:PTZ"), "tt:XAddr", f"http://{host}{SERVICE_PATHS['ptz'][0]}")
        extension = sub(caps, "tt:Extension")
        deviceio = sub(extension, "tt:DeviceIO")
        sub(deviceio, "tt:XAddr", f"http://{host}{SERVICE_PATHS['deviceio'][0]}")
        sub(deviceio, "tt:VideoSources", "1")
        sub(deviceio, "tt:VideoOutputs", "0")
        sub(deviceio, "tt:AudioSources", "0")
        sub(deviceio, "tt:AudioOutputs", "0")
        sub(deviceio, "tt:RelayOutputs", str(len(self.config.relays)))
        return out

    async def _get_device_information(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        out = ET.Element(q("tds", "GetDeviceInformationResponse"))
        sub(out, "tds:Manufacturer", self.config.manufacturer)
        sub(out, "tds:Model", self.config.model)
        sub(out, "tds:FirmwareVersion", self.config.firmware)
        sub(out, "tds:SerialNumber", hashlib.sha1(self.config.name.encode()).hexdigest()[:12])
        sub(out, "tds:HardwareId", "sim-1")
        return out

    # --- Media service -------------------------------------------------------------------

    def _encoders(self) -> list[tuple[str, str, int, int, int, str]]:
        """(profile, encoder token, width, height, fps, codec): main stream and sub-stream."""
        cfg = self.config
        return [
            ("Profile_1", "VideoEncoder_1", cfg.width, cfg.height, cfg.fps, cfg.encoding),
            (
                "Profile_2",
                "VideoEncoder_2",
                cfg.sub_width,
                cfg.sub_height,
                cfg.fps,
                cfg.sub_encoding,
            ),
        ]

    def _encoder_element(
        self, parent: ET.Element, tag: str, encoder: tuple[str, str, int, int, int, str]
    ) -> None:
        _, token, width, height, fps, codec = encoder
        conf = sub(parent, tag, token=token)
        sub(conf, "tt:Name", token)
        sub(conf, "tt:UseCount", "1")
        sub(conf, "tt:Encoding", codec)
        resolution = sub(conf, "tt:Resolution")
        sub(resolution, "tt:Width", str(width))
        sub(resolution, "tt:Height", str(height))
        sub(conf, "tt:Quality", "5")
        rate = sub(conf, "tt:RateControl")
        sub(rate, "tt:FrameRateLimit", str(fps))
        sub(rate, "tt:EncodingInterval", "1")
        sub(rate, "tt:BitrateLimit", "4096")
        if codec == "H264":
            h264 = sub(conf, "tt:H264")
            sub(h264, "tt:GovLength", str(round(fps * self.config.gop_s)))
            sub(h264, "tt:H264Profile", "Main")
        multicast = sub(conf, "tt:Multicast")
        address = sub(multicast, "tt:Address")
        sub(address, "tt:Type", "IPv4")
        sub(address, "tt:IPv4Address", "0.0.0.0")
        sub(multicast, "tt:Port", "0")
        sub(multicast, "tt:TTL", "0")
        sub(multicast, "tt:AutoStart", "false")
        sub(conf, "tt:SessionTimeout", "PT60S")

    def _profile_token(self, soap: SoapRequest) -> str:
        token = child_text(soap.operation, "ProfileToken")
        if token not in {e[0] for e in self._encoders()}:
            raise SoapFault("Sender", "ter:InvalidArgVal", f"no profile {token!r}")
        return token

    async def _get_profiles(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        out = ET.Element(q("trt", "GetProfilesResponse"))
        for encoder in self._encoders():
            profile = sub(out, "trt:Profiles", token=encoder[0], fixed="true")
            sub(profile, "tt:Name", "mainStream" if encoder[0] == "Profile_1" else "subStream")
            source = sub(profile, "tt:VideoSourceConfiguration", token="VideoSourceConfig_1")
            sub(source, "tt:Name", "VideoSourceConfig_1")
            sub(source, "tt:UseCount", "2")
            sub(source, "tt:SourceToken", "VideoSource_1")
            sub(
                source,
                "tt:Bounds",
                x="0",
                y="0",
                width=str(self.config.width),
                height=str(self.config.height),
            )
            self._encoder_element(profile, "tt:VideoEncoderConfiguration", encoder)
            if self.config.presets:
                ptz = sub(profile, "tt:PTZConfiguration", token="PTZConfig_1")
                sub(ptz, "tt:Name", "PTZConfig_1")
                sub(ptz, "tt:UseCount", "2")
                sub(ptz, "tt:NodeToken", "PTZNode_1")
        return out

    async def _get_stream_uri(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        token = self._profile_token(soap)
        protocol = (
            child_text(find_local(soap.operation, "Transport"), "Protocol") or "RTSP"
        ).upper()
        hostname = self._host(request).rsplit(":", 1)[0]
        if protocol == "HTTP":
            uri = f"http://{self._creds_prefix()}{self._host(request)}/onvif/mjpeg?profile={token}"
        else:
            uri = f"rtsp://{self._creds_prefix()}{hostname}:{self.rtsp.port}/{token}"
        return self._media_uri("trt:GetStreamUriResponse", uri)

    async def _get_snapshot_uri(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        token = self._profile_token(soap)
        uri = f"http://{self._creds_prefix()}{self._host(request)}/onvif/snapshot?profile={token}"
        return self._media_uri("trt:GetSnapshotUriResponse", uri)

    @staticmethod
    def _media_uri(tag: str, uri: str) -> ET.Element:
        prefix, local = tag.split(":")
        out = ET.Element(q(prefix, local))
        media_uri = sub(out, "trt:MediaUri")
        sub(media_uri, "tt:Uri", uri)
        sub(media_uri, "tt:InvalidAfterConnect", "false")
        sub(media_uri, "tt:InvalidAfterReboot", "false")
        sub(media_uri, "tt:Timeout", "PT0S")
        return out

    async def _get_video_encoder_configuration(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        token = child_text(soap.operation, "ConfigurationToken")
        for encoder in self._encoders():
            if encoder[1] == token:
                out = ET.Element(q("trt", "GetVideoEncoderConfigurationResponse"))
                self._encoder_element(out, "trt:Configuration", encoder)
                return out
        raise SoapFault("Sender", "ter:InvalidArgVal", f"no encoder configuration {token!r}")

    async def _get_video_encoder_configurations(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        out = ET.Element(q("trt", "GetVideoEncoderConfigurationsResponse"))
        for encoder in self._encoders():
            self._encoder_element(out, "trt:Configurations", encoder)
        return out

    # --- PTZ and DeviceIO ----------------------------------------------------------------

    async def _get_presets(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        self._profile_token(soap)
        out = ET.Element(f"{{{SERVICE_PATHS['ptz'][1]}}}GetPresetsResponse")
        for token, name in self.config.presets.items():
            preset = ET.SubElement(out, f"{{{SERVICE_PATHS['ptz'][1]}}}Preset", {"token": token})
            sub(preset, "tt:Name", name)
        return out

    async def _goto_preset(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        profile = self._profile_token(soap)
        preset = child_text(soap.operation, "PresetToken") or ""
        if preset not in self.config.presets:
            raise SoapFault("Sender", "ter:InvalidArgVal", f"no preset {preset!r}")
        self.last_preset = preset
        self.preset_calls.append(PresetCall(datetime.now(UTC), profile, preset))
        return ET.Element(f"{{{SERVICE_PATHS['ptz'][1]}}}GotoPresetResponse")

    async def _get_relay_outputs(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        # DeviceIO reuses the device service's message elements, so answer in the request's
        # own namespace whichever service it arrived on.
        ns = soap.namespace
        out = ET.Element(f"{{{ns}}}GetRelayOutputsResponse")
        for token in self.config.relays:
            relay = ET.SubElement(out, f"{{{ns}}}RelayOutputs", {"token": token})
            props = sub(relay, "tt:Properties")
            sub(props, "tt:Mode", "Bistable")
            sub(props, "tt:DelayTime", "PT0S")
            sub(props, "tt:IdleState", "open")
        return out

    async def _set_relay_output_state(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        token = child_text(soap.operation, "RelayOutputToken") or ""
        state = child_text(soap.operation, "LogicalState") or ""
        if token not in self.relay_state:
            raise SoapFault("Sender", "ter:InvalidArgVal", f"no relay output {token!r}")
        if state not in ("active", "inactive"):
            raise SoapFault("Sender", "ter:InvalidArgVal", f"bad LogicalState {state!r}")
        self.relay_state[token] = state
        self.relay_history.append(RelayChange(datetime.now(UTC), token, state))
        return ET.Element(f"{{{soap.namespace}}}SetRelayOutputStateResponse")
