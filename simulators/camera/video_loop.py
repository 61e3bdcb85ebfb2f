"""Encoded video loops: a few seconds of a scene encoded once with PyAV, then replayed.

A real camera's hardware encoder costs its host nothing; a simulated one must not cost the
machine running hundreds of them much more. So each distinct picture (scene faults, codec,
size, frame rate, GOP) is rendered and encoded once per process — and kept in a small file
cache between processes — and every camera showing that picture replays the same access
units, already cut into RTP payloads. Loops are whole GOPs, each starting with an IDR picture
carrying its parameter sets in band, so a player may join at any loop start.

The cache directory is ``$MALLSIM_VIDEO_CACHE`` (``off`` disables the file cache), by default
``mallsim-video-<uid>`` in the system temporary directory.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import struct
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from simulators.camera import rtp

log = logging.getLogger(__name__)

CODECS = ("H264", "H265")
_ENCODERS = {"H264": "libx264", "H265": "libx265"}
_FORMAT_VERSION = b"MSVL2"
_SCENE_NAME = "mallsim"


@dataclass(frozen=True, slots=True)
class LoopKey:
    """What makes two loops different; cameras asking for equal keys share one loop."""

    codec: str
    width: int
    height: int
    fps: int
    """Pictures per second actually sent (RTP timestamps advance by 90000 / fps)."""
    declared_fps: int
    """The rate the encoder is configured for (in the SPS timing information)."""
    gop_frames: int
    loop_frames: int
    faults: frozenset[str] = frozenset()

    def digest(self) -> str:
        text = (
            f"{self.codec}/{self.width}x{self.height}/{self.fps}/{self.declared_fps}/"
            f"{self.gop_frames}/"
            f"{self.loop_frames}/{','.join(sorted(self.faults))}"
        )
        return hashlib.sha256(text.encode() + _scene_version()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One encoded picture: its NAL units and its RTP payloads (shared by every session)."""

    nals: tuple[bytes, ...]
    payloads: tuple[bytes, ...]
    key: bool
    size: int


@dataclass(frozen=True, slots=True)
class VideoLoop:
    key: LoopKey
    units: tuple[AccessUnit, ...]
    parameter_sets: tuple[bytes, ...]
    """H.264: SPS, PPS. H.265: VPS, SPS, PPS — as the SDP announces them."""

    @property
    def ts_step(self) -> int:
        """RTP timestamp increment per picture (90 kHz clock)."""
        return rtp.CLOCK_RATE // self.key.fps

    def fmtp(self) -> str:
        """The SDP ``a=fmtp`` parameters for this loop's codec and parameter sets."""
        b64 = [base64.b64encode(p).decode("ascii") for p in self.parameter_sets]
        if self.key.codec == "H265":
            vps, sps, pps = b64
            return f"sprop-vps={vps};sprop-sps={sps};sprop-pps={pps}"
        sps_raw = self.parameter_sets[0]
        profile_level = sps_raw[1:4].hex().upper()
        return (
            f"packetization-mode=1;profile-level-id={profile_level};"
            f"sprop-parameter-sets={','.join(b64)}"
        )


_loops: dict[LoopKey, VideoLoop] = {}
_locks: dict[LoopKey, threading.Lock] = {}
_locks_guard = threading.Lock()
_scene_hash: bytes | None = None


def _scene_version() -> bytes:
    global _scene_hash
    if _scene_hash is None:
        from simulators import scene

        own = Path(__file__).read_bytes()
        _scene_hash = hashlib.sha256(Path(scene.__file__).read_bytes() + own).digest()
    return _scene_hash


def cached(key: LoopKey) -> VideoLoop | None:
    """The loop if this process already has it (never blocks)."""
    return _loops.get(key)


def get(key: LoopKey) -> VideoLoop:
    """The loop for ``key``: from memory, else from the file cache, else encoded now.

    Blocking (seconds of CPU the first time): call it in a thread. Safe from many threads;
    each key is encoded once.
    """
    loop = _loops.get(key)
    if loop is not None:
        return loop
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        loop = _loops.get(key)
        if loop is None:
            loop = _load(key) or _encode_and_store(key)
            _loops[key] = loop
    return loop


def _cache_dir() -> Path | None:
    setting = os.environ.get("MALLSIM_VIDEO_CACHE", "")
    if setting.lower() == "off":
        return None
    if setting:
        return Path(setting)
    return Path(tempfile.gettempdir()) / f"mallsim-video-{os.getuid()}"


def _encode_and_store(key: LoopKey) -> VideoLoop:
    units = _encode(key)
    directory = _cache_dir()
    if directory is not None:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = directory / f"{key.digest()}.bin"
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(_serialise(units))
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("video cache not written: %s", exc)
    return _assemble(key, units)


def _load(key: LoopKey) -> VideoLoop | None:
    directory = _cache_dir()
    if directory is None:
        return None
    path = directory / f"{key.digest()}.bin"
    try:
        units = _deserialise(path.read_bytes())
        return _assemble(key, units)
    except (OSError, ValueError, struct.error, IndexError) as exc:
        # Missing or damaged: encode afresh (and overwrite it).
        log.debug("video cache %s not used: %s", path.name, exc)
        return None


def _serialise(units: list[tuple[list[bytes], bool]]) -> bytes:
    out = [_FORMAT_VERSION, struct.pack("!I", len(units))]
    for nals, key in units:
        out.append(struct.pack("!BI", int(key), len(nals)))
        for nal in nals:
            out.append(struct.pack("!I", len(nal)))
            out.append(nal)
    return b"".join(out)


def _deserialise(data: bytes) -> list[tuple[list[bytes], bool]]:
    if not data.startswith(_FORMAT_VERSION):
        raise ValueError("not a video loop file of this version")
    pos = len(_FORMAT_VERSION)
    (count,) = struct.unpack_from("!I", data, pos)
    pos += 4
    units = []
    for _ in range(count):
        key, n = struct.unpack_from("!BI", data, pos)
        pos += 5
        nals = []
        for _ in range(n):
            (size,) = struct.unpack_from("!I", data, pos)
            pos += 4
            if pos + size > len(data):
                raise ValueError("truncated")
            nals.append(data[pos : pos + size])
            pos += size
        units.append((nals, bool(key)))
    if pos != len(data) or not units:
        raise ValueError("trailing or missing data")
    return units


def _assemble(key: LoopKey, raw: list[tuple[list[bytes], bool]]) -> VideoLoop:
    if not raw or not raw[0][1]:
        raise ValueError("a loop must start with a key frame")
    wanted = (32, 33, 34) if key.codec == "H265" else (7, 8)
    kind = rtp.h265_type if key.codec == "H265" else rtp.h264_type
    found = {kind(nal): nal for nal in raw[0][0] if kind(nal) in wanted}
    if set(found) != set(wanted):
        raise ValueError("the first key frame carries no parameter sets")
    units = tuple(
        AccessUnit(
            nals=tuple(nals),
            payloads=tuple(rtp.packetize(key.codec, nals)),
            key=is_key,
            size=sum(len(n) for n in nals),
        )
        for nals, is_key in raw
    )
    return VideoLoop(key, units, tuple(found[t] for t in wanted))


def _encode(key: LoopKey) -> list[tuple[list[bytes], bool]]:
    import av

    from simulators.scene import Scene

    scene = Scene(_SCENE_NAME, width=key.width, height=key.height, seed=0)
    scene.faults = set(key.faults)
    codec = av.CodecContext.create(_ENCODERS[key.codec], "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width = key.width
    codec.height = key.height
    codec.pix_fmt = "yuv420p"
    # The encoder is set up for the declared rate, as a camera dropping frames still is;
    # the pictures show the scene at the rate actually sent.
    codec.time_base = Fraction(1, key.declared_fps)
    codec.framerate = Fraction(key.declared_fps)
    gop = str(key.gop_frames)
    # A stuck picture is coded at a constant quantiser: its copies then all take the same
    # decision (skip every block), where a rate control would spend bits refining them.
    frozen = "frozen" in key.faults
    if key.codec == "H265":
        rate = {"qp": "30"} if frozen else {"crf": "30"}
    else:
        rate = {"qp": "28"} if frozen else {"crf": "28"}
    if key.codec == "H265":
        codec.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            **rate,
            # Parameter sets before every IDR, as cameras send them; x265's own log silenced.
            "x265-params": (
                f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:open-gop=0:repeat-headers=1:"
                "log-level=none"
            ),
        }
    else:
        codec.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            **rate,
            "g": gop,
            "keyint_min": gop,
            "sc_threshold": "0",
            "bf": "0",
        }
    codec.open()
    units: list[tuple[list[bytes], bool]] = []

    def take(packets: list[Any]) -> None:
        for packet in packets:
            units.append((rtp.split_annexb(bytes(packet)), bool(packet.is_keyframe)))

    still: av.VideoFrame | None = None
    for i in range(key.loop_frames):
        if still is not None:
            frame = still
        else:
            picture = scene.render(i / key.fps)
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        packets = codec.encode(frame)
        take(packets)
        if i == 0 and frozen:
            # A stuck picture: after the first key frame the encoder is fed that key frame as
            # decoded, so every later picture matches its reference exactly and is coded as
            # skipped blocks; the decoded stream repeats one picture to the last pixel.
            still = _decoded(key.codec, packets)
    take(codec.encode(None))
    log.debug("encoded %s: %d access units", key, len(units))
    return units


def _decoded(codec_name: str, packets: list[Any]) -> Any:
    import av

    decoder = av.CodecContext.create("hevc" if codec_name == "H265" else "h264", "r")
    frames = [f for packet in packets for f in decoder.decode(packet)]
    frames += decoder.decode(None)
    if len(frames) != 1:
        raise RuntimeError(f"expected one decoded key frame, got {len(frames)}")
    frame = frames[0]
    # Decoded as an I picture: left so, the encoder would make every copy a key frame.
    frame.pict_type = av.video.frame.PictureType.NONE
    return frame
