"""Camera simulator cost: CPU and memory of N simulated cameras serving RTSP in one process.

The cameras run in their own process (``python -m simulators.cli camera --count N``), as in
the hub's video benchmarks; this process only drives them and reads ``/proc`` for the
simulator's CPU time and RSS. Phases, each timed on the simulator process alone:

* start: N cameras up, the shared loops ready (from the file cache when warm);
* idle: nobody connected;
* liveness: one RTSP connection per camera with Digest, OPTIONS + DESCRIBE, in parallel
  batches (what a hub's liveness cycle asks of every camera);
* streaming: S sessions (sub-streams, TCP interleaved) received in full for a few seconds,
  then the same for main streams; the cost per streamed camera-second.

Baseline in the same run: what one camera-second would cost if each simulated camera rendered
and encoded its own stream live (the scene rendered and encoded with PyAV in this process for
25 frames, at sub-stream and at main-stream size), which is what the shared loops avoid.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import resource
import secrets
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench.common import print_machine, process_cpu_seconds, table

USER = "bench"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cameras", type=int, nargs="+", default=[50, 500], help="sizes (50 500)")
    p.add_argument(
        "--streams",
        type=int,
        default=0,
        help="concurrent streaming sessions per size (default: all cameras, at most 500)",
    )
    p.add_argument("--stream-s", type=float, default=5.0, help="seconds of streaming per phase")
    p.add_argument("--idle-s", type=float, default=5.0, help="seconds of the idle phase")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Cameras:
    """``mallsim camera --count N`` in its own process."""

    def __init__(self, count: int, password: str) -> None:
        self.count = count
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.cli",
                "camera",
                "--count",
                str(count),
                "--user",
                USER,
                "--password-env",
                "BENCH_CAMERA_PASSWORD",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "BENCH_CAMERA_PASSWORD": password},
        )
        self.rtsp: list[tuple[str, int]] = []

    async def ready(self) -> None:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        while len(self.rtsp) < self.count:
            line = await asyncio.to_thread(stdout.readline)
            if not line:
                raise RuntimeError("the camera simulator exited")
            url = line.split("\t")[2]
            host, port = url.removeprefix("rtsp://").split("/")[0].rsplit(":", 1)
            self.rtsp.append((host, int(port)))

    def cpu(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Client:
    """A minimal RTSP client with Digest: enough to DESCRIBE and to receive a stream."""

    def __init__(self, host: str, port: int, password: str) -> None:
        self.host, self.port, self.password = host, port, password
        self.cseq = 0
        self.auth: dict[str, str] = {}
        self.session = ""
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        self.writer.close()

    def url(self, profile: str) -> str:
        return f"rtsp://{self.host}:{self.port}/{profile}"

    async def request(self, method: str, uri: str, extra: str = "") -> tuple[int, dict[str, str]]:
        for _ in range(2):
            self.cseq += 1
            lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}"]
            if self.auth:
                lines.append(self._authorization(method, uri))
            if self.session:
                lines.append(f"Session: {self.session}")
            if extra:
                lines.append(extra)
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            status, headers = await self._answer()
            if status == 401 and not self.auth:
                self.auth = dict(re.findall(r'(\w+)="([^"]*)"', headers["www-authenticate"]))
                continue
            if "session" in headers:
                self.session = headers["session"].split(";")[0]
            return status, headers
        return status, headers

    def _authorization(self, method: str, uri: str) -> str:
        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        realm, nonce = self.auth["realm"], self.auth["nonce"]
        ha1, ha2 = md5(f"{USER}:{realm}:{self.password}"), md5(f"{method}:{uri}")
        nc, cnonce = f"{self.cseq:08x}", secrets.token_hex(4)
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return (
            f'Authorization: Digest username="{USER}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", qop=auth, nc={nc}, cnonce="{cnonce}"'
        )

    async def _answer(self) -> tuple[int, dict[str, str]]:
        status = int((await self.reader.readuntil(b"\r\n")).split()[1])
        headers: dict[str, str] = {}
        while (line := (await self.reader.readuntil(b"\r\n")).strip()) != b"":
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length:
            await self.reader.readexactly(length)
        return status, headers

    async def receive(self, profile: str, seconds: float) -> int:
        """SETUP (TCP) + PLAY, then read everything for ``seconds``; returns bytes read."""
        await self.request("DESCRIBE", self.url(profile))
        transport = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1"
        await self.request("SETUP", self.url(profile) + "/trackID=1", transport)
        status, _ = await self.request("PLAY", self.url(profile))
        if status != 200:
            raise RuntimeError(f"PLAY answered {status}")
        total = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    chunk = await self.reader.read(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            total += len(chunk)
        return total


async def liveness(cams: Cameras, password: str, parallel: int = 64) -> tuple[float, int]:
    """OPTIONS + DESCRIBE on every camera; (seconds, cameras answered 200)."""
    sem = asyncio.Semaphore(parallel)
    ok = 0

    async def one(host: str, port: int) -> None:
        nonlocal ok
        async with sem:
            client = Client(host, port, password)
            await client.open()
            try:
                await client.request("OPTIONS", client.url("Profile_1"))
                status, _ = await client.request("DESCRIBE", client.url("Profile_1"))
                ok += status == 200
            finally:
                client.close()

    started = time.monotonic()
    await asyncio.gather(*(one(h, p) for h, p in cams.rtsp))
    return time.monotonic() - started, ok


async def streaming(
    cams: Cameras, password: str, profile: str, count: int, seconds: float
) -> dict[str, float]:
    clients = [Client(h, p, password) for h, p in cams.rtsp[:count]]
    await asyncio.gather(*(c.open() for c in clients))
    cpu0, t0 = cams.cpu(), time.monotonic()
    try:
        received = await asyncio.gather(*(c.receive(profile, seconds) for c in clients))
    finally:
        for c in clients:
            c.close()
    cpu, wall = cams.cpu() - cpu0, time.monotonic() - t0
    return {
        "sessions": count,
        "wall_s": wall,
        "sim_cpu_s": cpu,
        "cpu_ms_per_camera_s": cpu / (count * seconds) * 1e3,
        "mbit_s": sum(received) * 8 / wall / 1e6,
        "rss_mb": rss_mb(cams.proc.pid),
    }


def live_encode_cost(width: int, height: int, frames: int = 25) -> float:
    """CPU seconds to render and encode one second of one camera live (the baseline)."""
    import av

    from simulators.scene import Scene

    started = time.process_time()
    scene = Scene("baseline", width, height, seed=1)
    codec = av.CodecContext.create("libx264", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base, codec.framerate = Fraction(1, 25), Fraction(25)
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "28", "threads": "1"}
    codec.open()
    started = time.process_time()
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(scene.render(i / 25), format="bgr24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        codec.encode(frame)
    codec.encode(None)
    return (time.process_time() - started) * 25 / frames


async def one_size(count: int, args: argparse.Namespace, password: str) -> dict[str, Any]:
    cams = Cameras(count, password)
    try:
        started = time.monotonic()
        await cams.ready()
        start_s, start_cpu = time.monotonic() - started, cams.cpu()
        rss_start = rss_mb(cams.proc.pid)
        cpu0 = cams.cpu()
        await asyncio.sleep(args.idle_s)
        idle = (cams.cpu() - cpu0) / args.idle_s
        cpu0 = cams.cpu()
        live_s, answered = await liveness(cams, password)
        live_cpu = cams.cpu() - cpu0
        streams = min(count, args.streams or 500)
        sub = await streaming(cams, password, "Profile_2", streams, args.stream_s)
        main = await streaming(cams, password, "Profile_1", min(streams, 50), args.stream_s)
        peak = hwm_mb(cams.proc.pid)
    finally:
        cams.stop()
    return {
        "cameras": count,
        "start_s": start_s,
        "start_cpu_s": start_cpu,
        "rss_idle_mb": rss_start,
        "idle_cpu_per_s": idle,
        "liveness_s": live_s,
        "liveness_ok": answered,
        "liveness_cpu_ms_per_camera": live_cpu / count * 1e3,
        "sub": sub,
        "main": main,
        "peak_rss_mb": peak,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print_machine()
    password = secrets.token_urlsafe(12)
    baseline = {
        "sub_640x360": await asyncio.to_thread(live_encode_cost, 640, 360),
        "main_1920x1080": await asyncio.to_thread(live_encode_cost, 1920, 1080),
    }
    sizes: list[dict[str, Any]] = []
    results: dict[str, Any] = {"baseline_live_cpu_s_per_camera_s": baseline, "sizes": sizes}
    rows = []
    for count in args.cameras:
        r = await one_size(count, args, password)
        sizes.append(r)
        for label, phase, base in (
            ("sub 640x360", r["sub"], baseline["sub_640x360"]),
            ("main 1920x1080", r["main"], baseline["main_1920x1080"]),
        ):
            rows.append(
                [
                    count,
                    label,
                    phase["sessions"],
                    phase["cpu_ms_per_camera_s"],
                    base * 1e3,
                    base * 1e3 / max(phase["cpu_ms_per_camera_s"], 1e-9),
                    phase["mbit_s"],
                    phase["rss_mb"],
                ]
            )
        print(
            f"{count} cameras: up in {r['start_s']:.1f} s ({r['start_cpu_s']:.1f} s CPU), "
            f"RSS {r['rss_idle_mb']:.0f} MB idle, peak {r['peak_rss_mb']:.0f} MB; "
            f"idle CPU {r['idle_cpu_per_s'] * 100:.1f} % of a core; "
            f"OPTIONS+DESCRIBE of all in {r['liveness_s']:.2f} s "
            f"({r['liveness_ok']} answered, {r['liveness_cpu_ms_per_camera']:.2f} ms CPU each)",
            flush=True,
        )
    print()
    print(
        table(
            [
                "cameras",
                "stream",
                "sessions",
                "sim CPU ms per camera-second",
                "live encode ms per camera-second (baseline)",
                "ratio",
                "Mbit/s sent",
                "sim RSS MB",
            ],
            rows,
        )
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results["driver_cpu_s"] = usage.ru_utime + usage.ru_stime
    return results
