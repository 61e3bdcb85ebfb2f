"""The upper platform's video side: INVITE a camera channel, receive RTP, check the PS.

The check is what a real platform's player would need: RTP with the SSRC we offered, a
payload that starts with an MPEG-PS pack header, and video that PyAV (FFmpeg's ``mpeg``
demuxer and the H.264/HEVC decoders) actually decodes into pictures.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import av

from simulators.gb28181_platform import Msg, UpperPlatform

MediaMode = Literal["udp", "tcp-passive", "tcp-active"]
"""``tcp-passive``: we listen and the device connects; ``tcp-active``: we connect to it."""


@dataclass(slots=True)
class StreamCheck:
    status: int
    reason: str = ""
    packets: int = 0
    payload_bytes: int = 0
    ssrc_ok: bool = False
    starts_with_pack: bool = False
    codec: str | None = None
    frames: int = 0
    width: int = 0
    height: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.ssrc_ok and self.starts_with_pack and self.frames > 0


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.packets.append(data)


def _payload(packet: bytes) -> tuple[int, int, bytes] | None:
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    seq, ssrc = struct.unpack_from("!H", packet, 2)[0], struct.unpack_from("!I", packet, 8)[0]
    offset = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        offset += 4 + 4 * struct.unpack_from("!H", packet, offset + 2)[0]
    return seq, ssrc, packet[offset:]


def decode_ps(data: bytes) -> tuple[str | None, int, int, int]:
    """(codec, frames decoded, width, height) of a PS byte string."""
    with av.open(io.BytesIO(data), mode="r", format="mpeg") as container:
        if not container.streams.video:
            return None, 0, 0, 0
        stream = container.streams.video[0]
        frames = width = height = 0
        for frame in container.decode(stream):
            frames += 1
            width, height = frame.width, frame.height
        return stream.codec_context.name, frames, width, height


async def invite(
    platform: UpperPlatform,
    device_id: str,
    channel_id: str,
    *,
    mode: MediaMode = "udp",
    seconds: float = 3.0,
    within: float = 20.0,
) -> StreamCheck:
    """Play ``channel_id`` for ``seconds`` and check what arrived (see the module docstring)."""
    loop = asyncio.get_running_loop()
    host = platform.host
    collector = _Collector()
    tcp_chunks: list[bytes] = []
    udp: asyncio.DatagramTransport | None = None
    server: asyncio.Server | None = None
    readers: list[asyncio.Task[None]] = []

    async def read_stream(reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                tcp_chunks.append(await reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        readers.append(loop.create_task(read_stream(reader)))

    if mode == "udp":
        udp, _ = await loop.create_datagram_endpoint(_Collector, local_addr=(host, 0))
        collector = udp.get_protocol()  # type: ignore[assignment]
        port = int(udp.get_extra_info("sockname")[1])
        proto, setup = "RTP/AVP", ""
    elif mode == "tcp-passive":
        server = await asyncio.start_server(accepted, host, 0)
        port = int(server.sockets[0].getsockname()[1])
        proto, setup = "TCP/RTP/AVP", "a=setup:passive\r\na=connection:new\r\n"
    else:
        port, proto, setup = 9, "TCP/RTP/AVP", "a=setup:active\r\na=connection:new\r\n"
    ssrc = f"0{platform.platform_id[3:8]}{secrets.randbelow(10000):04d}"
    sdp = (
        f"v=0\r\no={platform.platform_id} 0 0 IN IP4 {host}\r\ns=Play\r\nc=IN IP4 {host}\r\n"
        f"t=0 0\r\nm=video {port} {proto} 96 98\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
        f"a=rtpmap:98 H264/90000\r\n{setup}y={ssrc}\r\n"
    ).encode()
    headers, registration = platform.headers_to(device_id, "INVITE")
    call_id = dict(headers)["call-id"]
    headers += [
        ("contact", f"<sip:{platform.platform_id}@{host}:{platform.port}>"),
        ("subject", f"{channel_id}:{ssrc},{platform.platform_id}:0"),
        ("content-type", "application/sdp"),
    ]
    dev_host, dev_port = registration.addr
    msg = Msg(f"INVITE sip:{channel_id}@{dev_host}:{dev_port} SIP/2.0", headers, sdp)
    key = (call_id, 1, "INVITE")
    future: asyncio.Future[Msg] = loop.create_future()
    platform._waiting[key] = future
    check = StreamCheck(status=0)
    try:
        platform._send(msg, registration.addr, registration.transport)
        try:
            async with asyncio.timeout(within):
                answer = await future
        except TimeoutError:
            check.reason = "no answer to INVITE"
            return check
        check.status, check.reason = answer.status, answer.start.split(" ", 2)[-1]
        dialog = [(k, v) for k, v in headers if k in ("via", "from", "call-id", "max-forwards")]
        dialog.append(("to", answer.get("to")))
        ack = Msg(
            f"ACK sip:{channel_id}@{dev_host}:{dev_port} SIP/2.0", [*dialog, ("cseq", "1 ACK")]
        )
        platform._send(ack, registration.addr, registration.transport)
        if answer.status != 200:
            return check
        if mode == "tcp-active":
            answer_port = int(answer.body.decode().split("m=video ", 1)[1].split()[0])
            reader, _ = await asyncio.open_connection(dev_host, answer_port)
            readers.append(loop.create_task(read_stream(reader)))
        await asyncio.sleep(seconds)  # the stream's length, not synchronisation
        bye = Msg(
            f"BYE sip:{channel_id}@{dev_host}:{dev_port} SIP/2.0", [*dialog, ("cseq", "2 BYE")]
        )
        bye_key = (call_id, 2, "BYE")
        bye_future: asyncio.Future[Msg] = loop.create_future()
        platform._waiting[bye_key] = bye_future
        platform._send(bye, registration.addr, registration.transport)
        try:
            async with asyncio.timeout(5):
                await bye_future
        except TimeoutError:
            check.errors.append("BYE not answered")
        finally:
            platform._waiting.pop(bye_key, None)
    finally:
        platform._waiting.pop(key, None)
        if udp is not None:
            udp.close()
        if server is not None:
            server.close()
        for task in readers:
            task.cancel()
    raw = collector.packets if mode == "udp" else tcp_chunks
    parsed = [p for p in map(_payload, raw) if p is not None]
    check.packets = len(parsed)
    wanted = int(ssrc) & 0xFFFFFFFF
    check.ssrc_ok = bool(parsed) and all(s == wanted for _, s, _ in parsed)
    ps = b"".join(payload for _, _, payload in parsed)  # loopback keeps the order
    check.payload_bytes = len(ps)
    check.starts_with_pack = ps[:4] == b"\x00\x00\x01\xba"
    try:
        check.codec, check.frames, check.width, check.height = await asyncio.to_thread(
            decode_ps, ps
        )
    except av.FFmpegError as exc:
        check.errors.append(f"decode: {exc}")
    return check
