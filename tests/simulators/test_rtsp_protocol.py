"""The camera simulator's RTSP and RTP on the wire, read byte by byte by a small client written
here: Digest, SDP, TCP interleaving, RTP headers and fragmentation, keep-alive, TEARDOWN,
session time-outs, and hostile requests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import logging
import re
import secrets
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from simulators.camera import CameraFarm, SimCamera
from simulators.camera import rtp as rtp_core

USER = "installer"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class RawRtsp:
    """One RTSP connection; answers Digest challenges when it has credentials."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: str | None
    ) -> None:
        self.reader, self.writer, self.password = reader, writer, password
        self.cseq = 0
        self.challenge: dict[str, str] | None = None
        self.session = ""

    @classmethod
    async def connect(cls, cam: SimCamera, password: str | None) -> RawRtsp:
        reader, writer = await asyncio.open_connection("127.0.0.1", cam.rtsp_port)
        return cls(reader, writer, password)

    def close(self) -> None:
        self.writer.close()

    def _authorization(self, method: str, uri: str) -> str:
        assert self.challenge is not None and self.password is not None

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        realm, nonce = self.challenge["realm"], self.challenge["nonce"]
        ha1 = md5(f"{USER}:{realm}:{self.password}")
        ha2 = md5(f"{method}:{uri}")
        cnonce, nc = secrets.token_hex(4), f"{self.cseq:08x}"
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return (
            f'Digest username="{USER}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", qop=auth, nc={nc}, cnonce="{cnonce}", algorithm=MD5'
        )

    async def request(
        self, method: str, uri: str, headers: dict[str, str] | None = None, *, retry: bool = True
    ) -> Answer:
        self.cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}"]
        if self.challenge is not None and self.password is not None:
            lines.append(f"Authorization: {self._authorization(method, uri)}")
        if self.session:
            lines.append(f"Session: {self.session}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = await self.read_answer()
        assert answer.headers.get("cseq") == str(self.cseq)
        if answer.status == 401 and retry and self.password is not None:
            params = dict(re.findall(r'(\w+)="([^"]*)"', answer.headers["www-authenticate"]))
            self.challenge = params
            return await self.request(method, uri, headers, retry=False)
        if "session" in answer.headers:
            self.session = answer.headers["session"].split(";")[0]
        return answer

    async def read_answer(self) -> Answer:
        async with asyncio.timeout(10):
            while True:  # skip interleaved packets that arrive before the answer
                first = await self.reader.readexactly(1)
                if first != b"$":
                    break
                head = await self.reader.readexactly(3)
                await self.reader.readexactly(int.from_bytes(head[1:], "big"))
            status_line = first + await self.reader.readuntil(b"\r\n")
            headers: dict[str, str] = {}
            while (line := (await self.reader.readuntil(b"\r\n")).strip()) != b"":
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(int(status_line.split()[1]), headers, body)

    async def interleaved(self, seconds: float) -> list[tuple[int, bytes]]:
        """(channel, packet) for ``seconds``."""
        out: list[tuple[int, bytes]] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            try:
                async with asyncio.timeout(max(0.01, end - loop.time())):
                    head = await self.reader.readexactly(4)
                    data = await self.reader.readexactly(int.from_bytes(head[2:], "big"))
            except TimeoutError:
                break
            assert head[:1] == b"$"
            out.append((head[1], data))
        return out


def reassemble(codec: str, payloads: list[bytes]) -> list[bytes]:
    """NAL units from RTP payloads (single NAL unit packets and FU-A / FU)."""
    nals: list[bytes] = []
    current = bytearray()
    for p in payloads:
        kind = (p[0] >> 1) & 0x3F if codec == "H265" else p[0] & 0x1F
        if codec == "H264" and kind == 28:
            if p[1] & 0x80:
                current = bytearray(bytes(((p[0] & 0xE0) | (p[1] & 0x1F),)))
            current += p[2:]
            if p[1] & 0x40:
                nals.append(bytes(current))
        elif codec == "H265" and kind == 49:
            if p[2] & 0x80:
                current = bytearray(bytes(((p[0] & 0x81) | ((p[2] & 0x3F) << 1), p[1])))
            current += p[3:]
            if p[2] & 0x40:
                nals.append(bytes(current))
        else:
            nals.append(p)
    return nals


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture
async def cam(password: str) -> AsyncIterator[SimCamera]:
    async with CameraFarm.uniform(
        1,
        username=USER,
        password=password,
        sub_encoding="H265",
        rtsp_session_timeout_s=1.0,
    ) as farm:
        await farm[0].video_ready(["Profile_2"])
        yield farm[0]


def test_fragmentation_round_trip() -> None:
    big264 = bytes([0x65]) + secrets.token_bytes(5000)
    big265 = bytes([0x26, 0x01]) + secrets.token_bytes(5000)  # IDR_W_RADL
    small = bytes([0x41]) + b"x" * 10
    for codec, nals in (("H264", [small, big264]), ("H265", [big265])):
        payloads = rtp_core.packetize(codec, nals)
        assert all(len(p) <= rtp_core.MAX_PAYLOAD for p in payloads)
        assert len(payloads) > len(nals)
        assert reassemble(codec, payloads) == nals
    stream = b"\x00\x00\x00\x01" + small + b"\x00\x00\x01" + big264 + b"\x00\x00"
    assert rtp_core.split_annexb(stream) == [small, big264]


async def test_options_is_open_everything_else_needs_digest(cam: SimCamera) -> None:
    url = cam.rtsp_url("Profile_2")
    anonymous = await RawRtsp.connect(cam, None)
    try:
        options = await anonymous.request("OPTIONS", url)
        assert options.status == 200
        assert {"DESCRIBE", "SETUP", "PLAY", "GET_PARAMETER", "TEARDOWN"} <= {
            m.strip() for m in options.headers["public"].split(",")
        }
        describe = await anonymous.request("DESCRIBE", url)
        assert describe.status == 401
        assert describe.headers["www-authenticate"].startswith("Digest ")
        basic = base64.b64encode(f"{USER}:{cam.config.password}".encode()).decode()
        as_basic = await anonymous.request("DESCRIBE", url, {"Authorization": f"Basic {basic}"})
        assert as_basic.status == 401
    finally:
        anonymous.close()
    wrong = await RawRtsp.connect(cam, "not-the-password")
    try:
        assert (await wrong.request("DESCRIBE", url)).status == 401
    finally:
        wrong.close()


def fmtp_of(sdp: str) -> dict[str, str]:
    line = next(x for x in sdp.splitlines() if x.startswith("a=fmtp:96 "))
    return dict(kv.split("=", 1) for kv in line.removeprefix("a=fmtp:96 ").split(";"))


def nal_kind(codec: str, nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F if codec == "H265" else nal[0] & 0x1F


@pytest.mark.parametrize(("profile", "codec"), [("Profile_1", "H264"), ("Profile_2", "H265")])
async def test_tcp_session_on_the_wire(
    cam: SimCamera, password: str, profile: str, codec: str
) -> None:
    await cam.video_ready([profile])
    url = cam.rtsp_url(profile)
    client = await RawRtsp.connect(cam, password)
    try:
        describe = await client.request("DESCRIBE", url, {"Accept": "application/sdp"})
        assert describe.status == 200
        sdp = describe.body.decode()
        assert f"a=rtpmap:96 {codec}/90000" in sdp
        assert "a=framerate:25" in sdp and "a=control:trackID=1" in sdp
        fmtp = fmtp_of(sdp)
        if codec == "H264":
            sps, pps = (base64.b64decode(p) for p in fmtp["sprop-parameter-sets"].split(","))
            assert (nal_kind(codec, sps), nal_kind(codec, pps)) == (7, 8)
            assert fmtp["profile-level-id"].lower() == sps[1:4].hex()
        else:
            sets = [base64.b64decode(fmtp[f"sprop-{k}"]) for k in ("vps", "sps", "pps")]
            assert [nal_kind(codec, n) for n in sets] == [32, 33, 34]
        setup = await client.request(
            "SETUP",
            describe.headers["content-base"] + "trackID=1",
            {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"},
        )
        assert setup.status == 200
        assert "interleaved=0-1" in setup.headers["transport"]
        assert setup.headers["session"].endswith(";timeout=1")
        play = await client.request("PLAY", url, {"Range": "npt=0.000-"})
        assert play.status == 200
        info = dict(kv.split("=", 1) for kv in play.headers["rtp-info"].split(";")[1:])
        packets = await client.interleaved(0.6)
        # GET_PARAMETER keeps the session alive past its 1 s time-out.
        for _ in range(3):
            assert (await client.request("GET_PARAMETER", url)).status == 200
            await client.interleaved(0.5)
        assert client.session in cam.rtsp.sessions
        assert (await client.request("TEARDOWN", url)).status == 200
        assert cam.rtsp.sessions == {}
    finally:
        client.close()
    rtp_packets = [p for ch, p in packets if ch == 0]
    assert any(ch == 1 and p[1] == 200 for ch, p in packets)  # an RTCP sender report
    seqs = [struct.unpack("!H", p[2:4])[0] for p in rtp_packets]
    stamps = [struct.unpack("!I", p[4:8])[0] for p in rtp_packets]
    assert seqs[0] == int(info["seq"]) and stamps[0] == int(info["rtptime"])
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    assert all(p[0] == 0x80 and p[1] & 0x7F == 96 for p in rtp_packets)
    # Marker on the last packet of each picture, and only there; 3600 ticks a picture.
    groups: list[list[bytes]] = []
    for p, ts in zip(rtp_packets, stamps, strict=True):
        if not groups or struct.unpack("!I", groups[-1][-1][4:8])[0] != ts:
            groups.append([])
        groups[-1].append(p)
    complete = groups[:-1]
    assert len(complete) >= 10
    for group in complete:
        assert [bool(p[1] & 0x80) for p in group] == [False] * (len(group) - 1) + [True]
    pictures = sorted(set(stamps))
    assert {b - a for a, b in itertools.pairwise(pictures)} == {3600}
    first = [nal_kind(codec, n) for n in reassemble(codec, [p[12:] for p in complete[0]])]
    if codec == "H265":  # parameter sets, then an IDR picture (type 19 or 20)
        assert {32, 33, 34} <= set(first) and {19, 20} & set(first)
    else:
        assert {7, 8, 5} <= set(first)


async def test_udp_session_times_out_without_keep_alive(cam: SimCamera, password: str) -> None:
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
            received.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    url = cam.rtsp_url("Profile_2")
    client = await RawRtsp.connect(cam, password)
    try:
        await client.request("DESCRIBE", url)
        setup = await client.request(
            "SETUP",
            url + "/trackID=1",
            {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"},
        )
        assert setup.status == 200
        assert re.search(r"server_port=\d+-\d+", setup.headers["transport"])
        assert (await client.request("PLAY", url)).status == 200
        async with asyncio.timeout(5):
            first = await received.get()
        assert first[0] == 0x80
        # No request and no RTCP from us: the session ends after its 1 s time-out.
        async with asyncio.timeout(10):
            await cam.rtsp.sessions_gone()
        # Packets already on their way may still land; then nothing more comes.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                while True:
                    await received.get()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await received.get()
        gone = await client.request("GET_PARAMETER", url)
        assert gone.status == 454
    finally:
        client.close()
        transport.close()


async def test_hostile_requests_get_clear_answers_and_the_server_keeps_serving(
    cam: SimCamera, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = cam.rtsp_url("Profile_2")
    client = await RawRtsp.connect(cam, password)
    try:
        assert (await client.request("DESCRIBE", cam.rtsp_url("NoSuchProfile"))).status == 404
        assert (await client.request("RECORD", url)).status == 405
        multicast = {"Transport": "RTP/AVP;multicast;port=5000-5001"}
        assert (await client.request("SETUP", url, multicast)).status == 461
        assert (await client.request("PLAY", url, {"Session": "NOPE"})).status == 454
    finally:
        client.close()
    for garbage in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",  # TLS
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\n" + b"X-Pad: 1\r\n" * 100 + b"\r\n",
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n",
        b"A" * 100_000,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", cam.rtsp_port)
        writer.write(garbage)
        try:
            async with asyncio.timeout(5):
                rest = await reader.read()  # answered and closed, never hung
        except ConnectionResetError:
            rest = b""  # closed with our unread garbage still in its buffer: a reset
        assert rest.startswith(b"RTSP/1.0 400 ") or rest == b""
        writer.close()
    again = await RawRtsp.connect(cam, password)
    try:
        assert (await again.request("DESCRIBE", url)).status == 200
    finally:
        again.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert sum("bad RTSP request" in r.getMessage() for r in caplog.records) >= 4
