"""PS muxing checked by an implementation we did not write: FFmpeg's mpeg demuxer via PyAV."""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest

from adapters.gb28181 import ps
from adapters.gb28181.ps import Codec

ENCODERS: dict[Codec, tuple[str, dict[str, str]]] = {
    "h264": ("libx264", {"preset": "ultrafast", "g": "10"}),
    "h265": ("libx265", {"preset": "ultrafast", "x265-params": "keyint=10:log-level=none"}),
}


def encode(codec: Codec, frames: int = 25) -> tuple[bytes, list[Any]]:
    """Encode a moving grey ramp; returns (Annex B extradata, packets)."""
    name, options = ENCODERS[codec]
    encoder = av.CodecContext.create(name, "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = options
    packets: list[Any] = []
    for index in range(frames):
        picture = np.full((240, 320, 3), (index * 9) % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = encoder.time_base
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    return ps.annexb_extradata(codec, bytes(encoder.extradata or b"")), packets


def mux(codec: Codec, extradata: bytes, packets: list[Any]) -> bytes:
    out = io.BytesIO()
    for packet in packets:
        data = bytes(packet)
        if packet.is_keyframe and not ps.has_parameter_sets(codec, data):
            data = extradata + data
        assert packet.pts is not None
        dts = packet.dts if packet.dts is not None else packet.pts
        out.write(
            ps.mux_access_unit(codec, data, packet.pts * 3600, dts * 3600, packet.is_keyframe)
        )
    return out.getvalue()


@pytest.mark.parametrize(("codec", "decoder"), [("h264", "h264"), ("h265", "hevc")])
def test_ps_decodes_with_ffmpeg(codec: Codec, decoder: str) -> None:
    extradata, packets = encode(codec)
    data = mux(codec, extradata, packets)
    assert data[:4] == b"\x00\x00\x01\xba"
    # The PSM names the right stream type.
    psm = data.index(b"\x00\x00\x01\xbc")
    assert data[psm + 12] == ps.STREAM_TYPES[codec]
    with av.open(io.BytesIO(data), mode="r", format="mpeg") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == decoder
        decoded = list(container.decode(stream))
    assert len(decoded) == len(packets)
    assert (decoded[0].width, decoded[0].height) == (320, 240)
    # Presentation times survive the trip (90 kHz, frame n at n·3600 after the first).
    pts = sorted(int(f.pts or 0) for f in decoded)
    assert [p - pts[0] for p in pts] == [n * 3600 for n in range(len(packets))]


def test_big_access_unit_spans_several_pes_packets() -> None:
    payload = bytes(range(256)) * 600  # 153 600 bytes > one PES packet
    pack = ps.mux_access_unit("h264", payload, 9000, 9000, key=False)
    starts = [i for i in range(len(pack) - 3) if pack[i : i + 4] == b"\x00\x00\x01\xe0"]
    assert len(starts) >= 3
    body = b""
    for start in starts:
        (length,) = struct.unpack_from("!H", pack, start + 4)
        header_len = pack[start + 8]
        body += pack[start + 9 + header_len : start + 6 + length]
    assert body == payload


def test_pes_timestamps_encode_33_bits() -> None:
    big = (1 << 33) - 1
    (first,) = list(ps.pes_packets(b"\x00\x00\x01\x09", big, big - 3600))
    pts_bytes = first[9:14]
    value = (
        ((pts_bytes[0] >> 1) & 0x07) << 30
        | pts_bytes[1] << 22
        | (pts_bytes[2] >> 1) << 15
        | pts_bytes[3] << 7
        | pts_bytes[4] >> 1
    )
    assert value == big
    assert first[7] == 0xC0  # PTS and DTS


def test_rtp_packets_marker_ssrc_and_rfc4571() -> None:
    packetizer = ps.RtpPacketizer(ssrc=0x01020304, payload_type=96, sequence=65535)
    packets = packetizer.packets(b"x" * 3000, timestamp=123456)
    assert [len(p) - 12 for p in packets] == [1400, 1400, 200]
    assert [p[1] & 0x80 for p in packets] == [0, 0, 0x80]
    assert {p[1] & 0x7F for p in packets} == {96}
    assert [struct.unpack_from("!H", p, 2)[0] for p in packets] == [65535, 0, 1]
    assert {struct.unpack_from("!II", p, 4) for p in packets} == {(123456, 0x01020304)}
    framed = ps.frame_rfc4571(packets[0])
    assert struct.unpack_from("!H", framed)[0] == len(packets[0])


def test_extradata_from_avcc_becomes_annex_b() -> None:
    sps, pps = b"\x67\x42\x00\x1e\xab", b"\x68\xce\x38\x80"
    avcc = b"\x01\x42\x00\x1e\xff\xe1" + struct.pack("!H", len(sps)) + sps + b"\x01"
    avcc += struct.pack("!H", len(pps)) + pps
    assert ps.annexb_extradata("h264", avcc) == ps.START_CODE + sps + ps.START_CODE + pps
    assert ps.annexb_extradata("h264", b"\x01\x02") == b""
