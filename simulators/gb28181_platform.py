"""A GB/T 28181 upper-level platform (the police video network), written independently.

It speaks SIP over UDP and TCP on one port: challenges REGISTER with Digest MD5 and checks
the answer itself, refuses a registration addressed to another platform ID (404, like the
platforms in the field) and a reused Call-ID (400, like some of them), tracks keepalives,
answers alarms with ``Response/Alarm``, queries the catalog and other MANSCDP commands, and
invites live video (see ``gb28181_media``). Fault switch: ``restart()`` forgets every
registration, as a platform restart does. Imports nothing from the hub or the adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

log = logging.getLogger(__name__)

Addr = tuple[str, int]
_COMPACT: Final = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
}


@dataclass(slots=True)
class Msg:
    """A SIP message: start line, headers (lower-cased names, in order), body."""

    start: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def get(self, name: str) -> str:
        for key, value in self.headers:
            if key == name:
                return value
        return ""

    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.start.split(" ")[1])

    @property
    def method(self) -> str:
        return self.start.split(" ")[0]

    @property
    def cseq(self) -> tuple[int, str]:
        number, method = self.get("cseq").split()
        return int(number), method

    def encode(self) -> bytes:
        lines = [self.start]
        lines += [f"{_title(k)}: {v}" for k, v in self.headers if k != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _title(name: str) -> str:
    special = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate"}
    return special.get(name, "-".join(p.capitalize() for p in name.split("-")))


def parse(data: bytes) -> Msg:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers.append((_COMPACT.get(key, key), value.strip()))
    msg = Msg(lines[0].strip(), headers, body)
    length = msg.get("content-length")
    if length:
        msg.body = body[: int(length)]
    return msg


def user_of(value: str) -> str:
    match = re.search(r"sip:([^@;>]+)@", value)
    return match.group(1) if match else ""


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def reply(
    request: Msg, status: int, reason: str, *extra: tuple[str, str], body: bytes = b""
) -> Msg:
    headers = [(k, v) for k, v in request.headers if k == "via"]
    to = request.get("to")
    if status > 100 and "tag=" not in to:
        to += f";tag={secrets.token_hex(4)}"
    headers += [
        ("from", request.get("from")),
        ("to", to),
        ("call-id", request.get("call-id")),
        ("cseq", request.get("cseq")),
        *extra,
    ]
    if body:
        headers.append(("content-type", "Application/MANSCDP+xml"))
    return Msg(f"SIP/2.0 {status} {reason}", headers, body)


def read_xml(body: bytes) -> ET.Element:
    """Parse a MANSCDP body honouring its declared charset (GB2312/GBK read as GB18030)."""
    match = re.match(rb'\s*<\?xml[^>]*encoding="([^"]+)"', body)
    charset = match.group(1).decode().lower() if match else "utf-8"
    codec = "gb18030" if charset in ("gb2312", "gbk", "gb18030") else charset
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", body.decode(codec))
    return ET.fromstring(text)


@dataclass(slots=True)
class Registration:
    device_id: str
    addr: Addr
    transport: str
    expires_at: float
    call_id: str
    registered: int = 1
    keepalives: int = 0
    last_keepalive: float = 0.0


@dataclass(slots=True)
class ReceivedAlarm:
    device_id: str
    fields: dict[str, str]
    related: list[str]
    received_at: float
    charset: str


@dataclass
class UpperPlatform:
    """The simulated upper platform; ``async with`` starts it on ``host:port`` (0 = any)."""

    platform_id: str = "34020000002000000001"
    password: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    realm: str | None = None
    expires: int = 3600
    strict_id: bool = True
    """Answer 404 to a REGISTER addressed to another platform ID."""
    reject_reused_call_id: bool = True
    ignore_alarms: int = 0
    """Fault switch: leave this many ``Notify/Alarm`` MESSAGEs unanswered."""
    registrations: dict[str, Registration] = field(default_factory=dict)
    alarms: list[ReceivedAlarm] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    on_alarm: Callable[[ReceivedAlarm], None] | None = None

    def __post_init__(self) -> None:
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_closed: asyncio.Future[None] | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_writers: dict[Addr, asyncio.StreamWriter] = {}
        self._nonces: set[str] = set()
        self._used_call_ids: set[str] = set()
        self._waiting: dict[tuple[str, int, str], asyncio.Future[Msg]] = {}
        self._responses: dict[int, list[ET.Element]] = {}
        self._response_events: dict[int, asyncio.Event] = {}
        self._sn = 100
        self.changed = asyncio.Event()
        self.requests_seen: list[Msg] = []
        self.dialog_requests: list[Msg] = []
        self._background: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> UpperPlatform:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on UDP and TCP on one port (a free one when ``port`` is 0)."""
        wanted = self.port
        for attempt in range(20):
            try:
                await self._listen(wanted)
                return
            except OSError:
                # The free UDP port can be taken on TCP: try another one (when any will do).
                if wanted or attempt == 19:
                    raise

    async def _listen(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        platform = self
        closed: asyncio.Future[None] = loop.create_future()

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                platform._receive(data, (addr[0], addr[1]), "UDP")

            def connection_lost(self, exc: Exception | None) -> None:
                if not closed.done():
                    closed.set_result(None)

        transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=(self.host, port))
        bound = int(transport.get_extra_info("sockname")[1])
        try:
            self._tcp = await asyncio.start_server(self._tcp_client, self.host, bound)
        except OSError:
            transport.close()
            await closed
            raise
        self._udp, self._udp_closed, self.port = transport, closed, bound

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            if self._udp_closed is not None:
                await self._udp_closed  # the port is free again once the socket is closed
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        for writer in self._tcp_writers.values():
            writer.close()
        self._tcp_writers.clear()
        if self._tcp is not None:
            await self._tcp.wait_closed()
        for task in list(self._background):
            task.cancel()

    async def restart(self) -> None:
        """Stop, forget every registration and nonce, start again on the same port."""
        await self.stop()
        self.registrations.clear()
        self._nonces.clear()
        self.counters["restarts"] += 1
        await self.start()

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        addr: Addr = (peer[0], peer[1])
        self._tcp_writers[addr] = writer
        buffer = b""
        try:
            while data := await reader.read(65536):
                buffer += data
                while (end := buffer.find(b"\r\n\r\n")) >= 0:
                    match = re.search(rb"(?i)content-length\s*:\s*(\d+)", buffer[:end])
                    total = end + 4 + (int(match.group(1)) if match else 0)
                    if len(buffer) < total:
                        break
                    self._receive(buffer[:total], addr, "TCP")
                    buffer = buffer[total:]
        except (ConnectionError, OSError):
            pass
        finally:
            self._tcp_writers.pop(addr, None)
            writer.close()

    def _send(self, msg: Msg, addr: Addr, transport: str) -> None:
        data = msg.encode()
        if transport == "TCP":
            writer = self._tcp_writers.get(addr)
            if writer is not None:
                writer.write(data)
        elif self._udp is not None:
            self._udp.sendto(data, addr)

    # --- incoming -----------------------------------------------------------------------------

    def _receive(self, data: bytes, addr: Addr, transport: str) -> None:
        try:
            msg = parse(data)
        except (UnicodeDecodeError, ValueError, IndexError):
            self.counters["unparsable"] += 1
            return
        if msg.is_response:
            key = (msg.get("call-id"), *msg.cseq)
            future = self._waiting.get(key)
            if future is not None and not future.done() and msg.status >= 200:
                future.set_result(msg)
            return
        self.requests_seen.append(msg)
        method = msg.method
        if method == "REGISTER":
            self._on_register(msg, addr, transport)
        elif method == "MESSAGE":
            self._on_message(msg, addr, transport)
        elif method in ("BYE", "NOTIFY"):
            self.dialog_requests.append(msg)
            self._send(reply(msg, 200, "OK"), addr, transport)
        elif method != "ACK":
            self._send(reply(msg, 501, "Not Implemented"), addr, transport)
        self.changed.set()

    def _on_register(self, msg: Msg, addr: Addr, transport: str) -> None:
        device_id = user_of(msg.get("from"))
        call_id = msg.get("call-id")
        target = user_of(msg.start)
        realm = self.realm or self.platform_id[:10]
        auth = msg.get("authorization")
        if not auth:
            if self.reject_reused_call_id and call_id in self._used_call_ids:
                self.counters["reused_call_id"] += 1
                self._send(reply(msg, 400, "Bad Request"), addr, transport)
                return
            nonce = secrets.token_hex(16)
            self._nonces.add(nonce)
            challenge = f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5'
            self.counters["challenged"] += 1
            self._send(
                reply(msg, 401, "Unauthorized", ("www-authenticate", challenge)), addr, transport
            )
            return
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', auth))
        ha1 = md5(f"{params.get('username')}:{realm}:{self.password}")
        ha2 = md5(f"REGISTER:{params.get('uri')}")
        if params.get("qop"):
            expected = md5(
                f"{ha1}:{params.get('nonce')}:{params.get('nc')}:"
                f"{params.get('cnonce')}:{params.get('qop')}:{ha2}"
            )
        else:
            expected = md5(f"{ha1}:{params.get('nonce')}:{ha2}")
        if params.get("nonce") not in self._nonces or params.get("response") != expected:
            self.counters["auth_failed"] += 1
            self._send(reply(msg, 403, "Forbidden"), addr, transport)
            return
        self._nonces.discard(params.get("nonce", ""))
        if self.strict_id and target != self.platform_id:
            # As platforms in the field do: authenticated, but addressed to another ID.
            self.counters["wrong_platform_id"] += 1
            contact = ("contact", f"<sip:{self.platform_id}@{self.host}:{self.port}>")
            self._send(reply(msg, 404, "Not Found", contact), addr, transport)
            return
        self._used_call_ids.add(call_id)
        expires = int(msg.get("expires") or self.expires)
        loop = asyncio.get_running_loop()
        if expires == 0:
            self.registrations.pop(device_id, None)
            self.counters["unregistered"] += 1
        else:
            previous = self.registrations.get(device_id)
            self.registrations[device_id] = Registration(
                device_id,
                addr,
                transport,
                loop.time() + expires,
                call_id,
                registered=(previous.registered + 1) if previous else 1,
            )
            self.counters["registered"] += 1
        self._send(reply(msg, 200, "OK", ("expires", str(expires))), addr, transport)

    def _on_message(self, msg: Msg, addr: Addr, transport: str) -> None:
        device_id = user_of(msg.get("from"))
        try:
            root = read_xml(msg.body)
        except (ET.ParseError, UnicodeDecodeError, LookupError):
            self.counters["bad_xml"] += 1
            self._send(reply(msg, 400, "Bad Request"), addr, transport)
            return
        if root.tag == "Notify" and root.findtext("CmdType") == "Alarm" and self.ignore_alarms:
            self.ignore_alarms -= 1
            self.counters["alarm_ignored"] += 1
            return
        registration = self.registrations.get(device_id)
        if registration is None:
            # Not registered (e.g. we restarted): refuse, so the device registers again.
            self.counters["unregistered_message"] += 1
            self._send(reply(msg, 403, "Forbidden"), addr, transport)
            return
        self._send(reply(msg, 200, "OK"), addr, transport)
        cmd = root.findtext("CmdType") or ""
        sn = int(root.findtext("SN") or 0)
        if root.tag == "Notify" and cmd == "Keepalive":
            registration.keepalives += 1
            registration.last_keepalive = asyncio.get_running_loop().time()
        elif root.tag == "Notify" and cmd == "Alarm":
            fields = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
            info = root.find("Info")
            if info is not None:
                fields.update({c.tag: (c.text or "").strip() for c in info if len(c) == 0})
            related = [e.text or "" for e in root.iterfind("Info/RelatedVideo/DeviceID")]
            charset = re.match(rb'\s*<\?xml[^>]*encoding="([^"]+)"', msg.body)
            alarm = ReceivedAlarm(
                device_id,
                fields,
                related,
                asyncio.get_running_loop().time(),
                charset.group(1).decode() if charset else "",
            )
            self.alarms.append(alarm)
            if self.on_alarm is not None:
                self.on_alarm(alarm)
            answer = self._xml(
                "Response", "Alarm", sn, fields.get("DeviceID", device_id), "<Result>OK</Result>"
            )
            task = asyncio.get_running_loop().create_task(self._request_quietly(device_id, answer))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif root.tag == "Response":
            self._responses.setdefault(sn, []).append(root)
            self._response_events.setdefault(sn, asyncio.Event()).set()

    # --- outgoing -----------------------------------------------------------------------------

    def _xml(self, root: str, cmd: str, sn: int, device_id: str, inner: str = "") -> bytes:
        return (
            f'<?xml version="1.0" encoding="GB2312"?>\r\n<{root}>\r\n<CmdType>{cmd}</CmdType>'
            f"\r\n<SN>{sn}</SN>\r\n<DeviceID>{device_id}</DeviceID>\r\n{inner}</{root}>\r\n"
        ).encode("gb2312")

    def next_sn(self) -> int:
        self._sn += 1
        return self._sn

    def headers_to(
        self, device_id: str, method: str, cseq: int = 1, call_id: str | None = None
    ) -> tuple[list[tuple[str, str]], Registration]:
        registration = self.registrations[device_id]
        branch = f"z9hG4bK{secrets.token_hex(6)}"
        via = f"SIP/2.0/{registration.transport} {self.host}:{self.port};branch={branch}"
        return [
            ("via", via),
            (
                "from",
                f"<sip:{self.platform_id}@{self.platform_id[:10]}>;tag={secrets.token_hex(4)}",
            ),
            ("to", f"<sip:{device_id}@{device_id[:10]}>"),
            ("call-id", call_id or secrets.token_hex(10)),
            ("cseq", f"{cseq} {method}"),
            ("max-forwards", "70"),
        ], registration

    async def request(
        self,
        device_id: str,
        method: str,
        body: bytes = b"",
        extra: list[tuple[str, str]] | None = None,
        uri_user: str | None = None,
        within: float = 5.0,
    ) -> Msg:
        """Send a request to a registered device and wait for its final response."""
        headers, registration = self.headers_to(device_id, method)
        headers += extra or []
        if body and not any(k == "content-type" for k, _ in headers):
            headers.append(("content-type", "Application/MANSCDP+xml"))
        host, port = registration.addr
        msg = Msg(f"{method} sip:{uri_user or device_id}@{host}:{port} SIP/2.0", headers, body)
        key = (msg.get("call-id"), *msg.cseq)
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            self._send(msg, registration.addr, registration.transport)
            async with asyncio.timeout(within):
                return await future
        finally:
            self._waiting.pop(key, None)

    async def _request_quietly(self, device_id: str, body: bytes) -> None:
        with contextlib.suppress(TimeoutError, KeyError):
            await self.request(device_id, "MESSAGE", body)

    async def query(
        self,
        device_id: str,
        cmd: str,
        inner: str = "",
        target: str | None = None,
        within: float = 5.0,
    ) -> list[ET.Element]:
        """Send ``Query/<cmd>`` and collect the ``Response``s (all of them for a catalog)."""
        sn = self.next_sn()
        event = self._response_events.setdefault(sn, asyncio.Event())
        answer = await self.request(
            device_id, "MESSAGE", self._xml("Query", cmd, sn, target or device_id, inner)
        )
        if answer.status != 200:
            raise RuntimeError(f"{cmd} query answered {answer.start}")
        async with asyncio.timeout(within):
            while True:
                await event.wait()
                event.clear()
                got = self._responses.get(sn, [])
                if cmd != "Catalog" or sum(len(r.findall("DeviceList/Item")) for r in got) >= int(
                    got[0].findtext("SumNum") or 0
                ):
                    return got

    async def catalog(self, device_id: str) -> list[dict[str, str]]:
        """Every catalog item as a dict of its fields."""
        responses = await self.query(device_id, "Catalog")
        return [
            {c.tag: (c.text or "").strip() for c in item}
            for r in responses
            for item in r.iterfind("DeviceList/Item")
        ]

    async def control(self, device_id: str, target: str, inner: str) -> list[ET.Element]:
        sn = self.next_sn()
        event = self._response_events.setdefault(sn, asyncio.Event())
        await self.request(
            device_id, "MESSAGE", self._xml("Control", "DeviceControl", sn, target, inner)
        )
        async with asyncio.timeout(5):
            await event.wait()
        return self._responses[sn]

    async def subscribe_alarms(self, device_id: str, expires: int = 3600) -> Msg:
        """``SUBSCRIBE`` to the device's alarms; alarms then also arrive as in-dialog NOTIFY."""
        sn = self.next_sn()
        inner = "<StartAlarmPriority>0</StartAlarmPriority><EndAlarmPriority>0</EndAlarmPriority>"
        body = self._xml("Query", "Alarm", sn, device_id, inner)
        extra = [
            ("event", "Alarm"),
            ("expires", str(expires)),
            ("contact", f"<sip:{self.platform_id}@{self.host}:{self.port}>"),
        ]
        return await self.request(device_id, "SUBSCRIBE", body, extra)
