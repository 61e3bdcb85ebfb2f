"""Live H.264/H.265 sources for the streaming tests: FFmpeg encoding a test pattern in real time.

FFmpeg cannot serve RTSP itself (``-rtsp_flags listen`` is for receiving), so here it serves
the live stream as MPEG-TS over HTTP to one client — the same Annex B access units PyAV
hands the platform from an RTSP camera. The RTSP path is tested against the camera
simulator's RTSP server where that is available.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import Literal

from ..support.wait import wait_until

FFMPEG = shutil.which("ffmpeg")
Codec = Literal["h264", "h265"]
_ENCODERS: dict[Codec, list[str]] = {
    "h264": ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25"],
    "h265": ["-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
             "-x265-params", "log-level=none"],
}  # fmt: skip


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    """Whether a TCP socket listens on ``port`` (Linux /proc/net/tcp, state 0A)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return True
    return False


class FfmpegSource:
    """One FFmpeg process serving one live stream to one client."""

    def __init__(self, codec: Codec, size: str = "320x240") -> None:
        self.codec = codec
        self.size = size
        self.port = _free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}/live.ts"
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> FfmpegSource:
        assert FFMPEG is not None
        self.proc = await asyncio.create_subprocess_exec(
            FFMPEG, "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size={self.size}:rate=25",
            *_ENCODERS[self.codec], "-f", "mpegts", "-listen", "1", self.url,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await wait_until(lambda: _listening(self.port), within=15, what="ffmpeg listening")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
