"""MANSCDP (GB/T 28181 Annex A) XML bodies: build them in the configured charset, parse them safely.

Many deployed platforms still declare ``GB2312`` in the prolog; newer ones use ``UTF-8``. We
write the charset we are configured for and declare it; a character the charset cannot hold
(a name with 𠀀 or an emoji in GB2312) becomes ``?`` — visibly degraded, never an exception.
When reading we honour the declared charset but decode GB2312 and GBK as GB18030 (their
superset), because platforms that declare GB2312 routinely send GBK characters.

Parsing never trusts the input: a size cap, no DTD or entity declarations (billion laughs),
and every failure is a ``ManscdpError`` with a one-line reason.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal
from xml.sax.saxutils import escape

CONTENT_TYPE: Final = "Application/MANSCDP+xml"
MAX_BODY: Final = 256 * 1024
ROOTS: Final = ("Query", "Control", "Notify", "Response")
Charset = Literal["GB2312", "GBK", "UTF-8"]
CHARSETS: Final[tuple[Charset, ...]] = ("GB2312", "GBK", "UTF-8")
_PYTHON_CODEC: Final = {"GB2312": "gb2312", "GBK": "gbk", "UTF-8": "utf-8"}
_PROLOG: Final = re.compile(
    rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)["'][^>]*\?>"""
)


class ManscdpError(ValueError):
    """A body that is not a MANSCDP message we can read."""


@dataclass(frozen=True, slots=True)
class Node:
    """An XML element to write: a name, text or children, and attributes."""

    name: str
    text: str | int | None = None
    children: Sequence[Node] = ()
    attrs: tuple[tuple[str, str], ...] = ()


def _render(node: Node, out: list[str], depth: int) -> None:
    pad = "  " * depth
    attrs = "".join(f' {k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in node.attrs)
    if node.children:
        out.append(f"{pad}<{node.name}{attrs}>")
        for child in node.children:
            _render(child, out, depth + 1)
        out.append(f"{pad}</{node.name}>")
    else:
        text = "" if node.text is None else escape(str(node.text))
        out.append(f"{pad}<{node.name}{attrs}>{text}</{node.name}>")


def encode(root: Node, charset: Charset) -> bytes:
    """Serialise with an XML prolog declaring ``charset``; unencodable characters become ``?``."""
    lines = [f'<?xml version="1.0" encoding="{charset}"?>']
    _render(root, lines, 0)
    text = "\r\n".join(lines) + "\r\n"
    return text.encode(_PYTHON_CODEC[charset], errors="replace")


def message(root: str, cmd_type: str, sn: int, device_id: str, *body: Node) -> Node:
    """The common head of every MANSCDP message (CmdType, SN, DeviceID) followed by ``body``."""
    return Node(
        root,
        children=[Node("CmdType", cmd_type), Node("SN", sn), Node("DeviceID", device_id), *body],
    )


def gb_time(moment: datetime) -> str:
    """``2026-12-03T09:30:00``: local time without zone, as the standard writes it."""
    return moment.astimezone().strftime("%Y-%m-%dT%H:%M:%S")


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manscdp:
    """A parsed message: its root (Query/Control/Notify/Response), CmdType, SN and DeviceID."""

    root: str
    cmd_type: str
    sn: int
    device_id: str
    element: ET.Element = field(repr=False)
    charset: str = "UTF-8"

    def text(self, path: str) -> str | None:
        """Stripped text of the first element at ``path`` (ElementTree path), or None."""
        found = self.element.find(path)
        if found is None or found.text is None:
            return None
        return found.text.strip()


def declared_charset(body: bytes) -> str:
    match = _PROLOG.match(body)
    return match.group(1).decode("ascii").upper() if match else "UTF-8"


def decode_text(body: bytes) -> tuple[str, str]:
    """(text without prolog, declared charset). GB2312/GBK are read as GB18030."""
    charset = declared_charset(body)
    codec = {"GB2312": "gb18030", "GBK": "gb18030", "GB18030": "gb18030"}.get(charset)
    if codec is None:
        codec = "utf-8" if charset in ("UTF-8", "UTF8") else None
    if codec is None:
        raise ManscdpError(f"unsupported charset {charset!r}")
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        raise ManscdpError(f"body is not valid {charset}") from exc
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
    return text, charset


def parse(body: bytes) -> Manscdp:
    """Parse a MANSCDP body; raises ``ManscdpError`` with the reason for anything else."""
    if len(body) > MAX_BODY:
        raise ManscdpError(f"body of {len(body)} bytes exceeds {MAX_BODY}")
    if not body.strip():
        raise ManscdpError("empty body")
    text, charset = decode_text(body)
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise ManscdpError("DTD or entity declarations are not accepted")
    try:
        element = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ManscdpError(f"not well-formed XML: {exc}") from exc
    if element.tag not in ROOTS:
        raise ManscdpError(f"root element {element.tag!r} is not one of {', '.join(ROOTS)}")
    cmd_type = (element.findtext("CmdType") or "").strip()
    if not cmd_type:
        raise ManscdpError("no CmdType")
    sn_text = (element.findtext("SN") or "").strip()
    if not sn_text.isdigit() or len(sn_text) > 10:
        raise ManscdpError(f"bad SN {sn_text[:20]!r}")
    device_id = (element.findtext("DeviceID") or "").strip()
    if not device_id:
        raise ManscdpError("no DeviceID")
    return Manscdp(element.tag, cmd_type, int(sn_text), device_id, element, charset)


# --- the messages a lower-level platform sends -------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One entry of a catalog response: a video channel, an alarm input or a group."""

    device_id: str
    name: str
    parent_id: str
    civil_code: str
    address: str = ""
    status_on: bool = True
    manufacturer: str = "mallhub"
    model: str = ""
    owner: str = ""
    longitude: float | None = None
    latitude: float | None = None

    def node(self) -> Node:
        children = [
            Node("DeviceID", self.device_id),
            Node("Name", self.name),
            Node("Manufacturer", self.manufacturer),
            Node("Model", self.model),
            Node("Owner", self.owner),
            Node("CivilCode", self.civil_code),
            Node("Address", self.address),
            Node("Parental", 0),
            Node("ParentID", self.parent_id),
            Node("SafetyWay", 0),
            Node("RegisterWay", 1),
            Node("Secrecy", 0),
            Node("Status", "ON" if self.status_on else "OFF"),
        ]
        if self.longitude is not None and self.latitude is not None:
            children += [
                Node("Longitude", f"{self.longitude:.6f}"),
                Node("Latitude", f"{self.latitude:.6f}"),
            ]
        return Node("Item", children=children)


def catalog_responses(
    sn: int, device_id: str, items: Sequence[CatalogItem], per_message: int
) -> list[Node]:
    """The ``Response/Catalog`` messages for ``items``, ``per_message`` items each.

    Every message carries the total (``SumNum``) and its own count (``DeviceList Num``), so the
    upper platform knows when it has them all. An empty catalog is one message with Num 0.
    """
    if per_message < 1:
        raise ValueError("per_message must be at least 1")
    chunks = [items[i : i + per_message] for i in range(0, len(items), per_message)] or [[]]
    return [
        message(
            "Response",
            "Catalog",
            sn,
            device_id,
            Node("SumNum", len(items)),
            Node(
                "DeviceList",
                children=[item.node() for item in chunk],
                attrs=(("Num", str(len(chunk))),),
            ),
        )
        for chunk in chunks
    ]


def keepalive(sn: int, device_id: str) -> Node:
    return message("Notify", "Keepalive", sn, device_id, Node("Status", "OK"))


def device_info(
    sn: int, device_id: str, name: str, manufacturer: str, model: str, firmware: str, channels: int
) -> Node:
    return message(
        "Response",
        "DeviceInfo",
        sn,
        device_id,
        Node("DeviceName", name),
        Node("Result", "OK"),
        Node("Manufacturer", manufacturer),
        Node("Model", model),
        Node("Firmware", firmware),
        Node("Channel", channels),
    )


def device_status(
    sn: int,
    device_id: str,
    *,
    online: bool,
    now: datetime,
    alarms: Iterable[tuple[str, bool]] = (),
) -> Node:
    """``Response/DeviceStatus``; ``alarms`` lists (alarm input channel, alarming?)."""
    listed = list(alarms)
    return message(
        "Response",
        "DeviceStatus",
        sn,
        device_id,
        Node("Result", "OK"),
        Node("Online", "ONLINE" if online else "OFFLINE"),
        Node("Status", "OK"),
        Node("Encode", "ON"),
        Node("Record", "OFF"),
        Node("DeviceTime", gb_time(now)),
        Node(
            "Alarmstatus",
            children=[
                Node(
                    "Item",
                    children=[
                        Node("DeviceID", channel),
                        Node("DutyStatus", "ALARM" if alarming else "ONDUTY"),
                    ],
                )
                for channel, alarming in listed
            ],
            attrs=(("Num", str(len(listed))),),
        ),
    )


def record_info_empty(sn: int, device_id: str, name: str) -> Node:
    """``Response/RecordInfo`` with no records: the hub keeps no recordings."""
    return message(
        "Response",
        "RecordInfo",
        sn,
        device_id,
        Node("Name", name),
        Node("SumNum", 0),
        Node("RecordList", attrs=(("Num", "0"),)),
    )


def result(root_cmd: str, sn: int, device_id: str, ok: bool = True) -> Node:
    """``Response/<cmd>`` carrying only ``Result`` (DeviceControl, Alarm)."""
    return message("Response", root_cmd, sn, device_id, Node("Result", "OK" if ok else "ERROR"))


@dataclass(frozen=True, slots=True)
class AlarmNotice:
    """An alarm to report upward (``Notify/Alarm``)."""

    key: str
    """The hub's event id: repeated sends of one alarm share it (dedupe on our side)."""
    channel_id: str
    """The alarm input (button) channel, or the hub's own ID when no channel fits."""
    priority: int
    """1 first-class (most urgent) … 4 fourth-class."""
    method: int
    """1 phone, 2 device, 3 SMS, 4 GPS, 5 video, 6 device fault, 7 other."""
    alarm_type: int | None
    occurred_at: datetime
    description: str
    linked_cameras: tuple[str, ...] = ()
    longitude: float | None = None
    latitude: float | None = None


def alarm_notify(sn: int, notice: AlarmNotice) -> Node:
    body = [
        Node("AlarmPriority", notice.priority),
        Node("AlarmMethod", notice.method),
        Node("AlarmTime", gb_time(notice.occurred_at)),
        Node("AlarmDescription", notice.description),
    ]
    if notice.longitude is not None and notice.latitude is not None:
        body += [
            Node("Longitude", f"{notice.longitude:.6f}"),
            Node("Latitude", f"{notice.latitude:.6f}"),
        ]
    info = []
    if notice.alarm_type is not None:
        info.append(Node("AlarmType", notice.alarm_type))
    if notice.linked_cameras:
        # Not in the 2016 schema's required set; platforms that do not know it ignore it.
        info.append(
            Node(
                "RelatedVideo",
                children=[Node("DeviceID", camera) for camera in notice.linked_cameras],
                attrs=(("Num", str(len(notice.linked_cameras))),),
            )
        )
    if info:
        body.append(Node("Info", children=info))
    return message("Notify", "Alarm", sn, notice.channel_id, *body)


# --- what the upper platform sends us ------------------------------------------------------


PTZ_LEN: Final = 8


@dataclass(frozen=True, slots=True)
class PtzCommand:
    """A decoded ``PTZCmd`` (GB/T 28181 A.3): directions and speeds, zoom, or a preset."""

    raw: str
    pan: int
    """-1 left, 0 none, 1 right."""
    tilt: int
    """-1 up, 0 none, 1 down (the standard's byte 4 bit 3 up, bit 2 down)."""
    zoom: int
    """-1 out (wide), 0 none, 1 in (tele)."""
    pan_speed: int
    tilt_speed: int
    zoom_speed: int
    preset: int | None = None
    """Set for a call-preset command (0x82)."""

    @property
    def stop(self) -> bool:
        return self.preset is None and not (self.pan or self.tilt or self.zoom)


def parse_ptz(hex_text: str) -> PtzCommand:
    """Decode the 8-byte hex ``PTZCmd``: A5, version/check nibbles, address, command, data, sum."""
    text = hex_text.strip()
    if len(text) != 2 * PTZ_LEN or not re.fullmatch(r"[0-9A-Fa-f]+", text):
        raise ManscdpError(f"PTZCmd {text[:40]!r} is not 8 hex bytes")
    data = bytes.fromhex(text)
    if data[0] != 0xA5:
        raise ManscdpError(f"PTZCmd does not start with A5: {text}")
    if sum(data[:7]) % 256 != data[7]:
        raise ManscdpError(f"PTZCmd checksum mismatch: {text}")
    command = data[3]
    if command == 0x82:
        return PtzCommand(text.upper(), 0, 0, 0, 0, 0, 0, preset=data[5])
    if command & 0xC0:
        raise ManscdpError(f"PTZCmd command byte {command:#04x} is not a PTZ motion")
    pan = 1 if command & 0x01 else -1 if command & 0x02 else 0
    tilt = 1 if command & 0x04 else -1 if command & 0x08 else 0
    zoom = 1 if command & 0x10 else -1 if command & 0x20 else 0
    return PtzCommand(text.upper(), pan, tilt, zoom, data[4], data[5], data[6] >> 4)


def build_ptz(pan: int = 0, tilt: int = 0, zoom: int = 0, speed: int = 0x80) -> str:
    """The hex ``PTZCmd`` for a motion (for tests and simulators of our own)."""
    command = (
        (0x01 if pan > 0 else 0x02 if pan < 0 else 0)
        | (0x04 if tilt > 0 else 0x08 if tilt < 0 else 0)
        | (0x10 if zoom > 0 else 0x20 if zoom < 0 else 0)
    )
    data = [0xA5, 0x0F, 0x01, command, speed, speed, (speed & 0x0F) << 4]
    data.append(sum(data) % 256)
    return bytes(data).hex().upper()
