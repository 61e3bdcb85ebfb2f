"""The SIP paging driver against a real SIP peer: SIPp (Debian package sip-tester) as UAS.

SIPp answers with its own SDP and media port, echoes the RTP it receives (``-rtp_echo``),
checks digest credentials with its own code (``uas_paging_auth.xml``) and exits 0 only when
the call completed as its scenario says, BYE included.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from pathlib import Path

import pytest

from adapters.broadcast import ControllerConfig, ZoneConfig
from adapters.broadcast.sip import SipPagingDriver

from ..support.wait import wait_until

SIPP = shutil.which("sipp")
AUTH_SCENARIO = Path(__file__).with_name("uas_paging_auth.xml")

pytestmark = pytest.mark.skipif(
    SIPP is None, reason="sipp not installed (apt-get install sip-tester)"
)


def free_udp_port(spacing: int = 0) -> int:
    """A free UDP port (and ``port + spacing`` free too). SIPp cannot bind port 0 itself."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if not spacing:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
                try:
                    second.bind(("127.0.0.1", port + spacing))
                except OSError:
                    continue
                return port


def udp_port_bound(port: int) -> bool:
    """Whether some process has bound UDP ``port`` (Linux: /proc/net/udp)."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        local_address = line.split()[1]  # e.g. 0100007F:3AFE
        if int(local_address.rsplit(":", 1)[1], 16) == port:
            return True
    return False


class Sipp:
    """One SIPp UAS process for one call."""

    def __init__(self, workdir: Path, *scenario: str) -> None:
        self.workdir = workdir
        self.scenario = scenario
        self.port = free_udp_port()
        self.media_port = free_udp_port(spacing=2)  # SIPp also opens media_port + 2
        self.control_port = free_udp_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.output = ""

    async def __aenter__(self) -> Sipp:
        assert SIPP is not None
        self.proc = await asyncio.create_subprocess_exec(
            SIPP,
            *self.scenario,
            "-i", "127.0.0.1",
            "-p", str(self.port),
            "-mi", "127.0.0.1",
            "-mp", str(self.media_port),
            "-cp", str(self.control_port),
            "-rtp_echo",
            "-m", "1",
            "-nostdin",
            "-timeout", "30s",
            "-timeout_error",
            cwd=self.workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        await wait_until(lambda: udp_port_bound(self.port), within=10, what="SIPp listening")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def finish(self) -> int:
        assert self.proc is not None
        async with asyncio.timeout(30):
            out, _ = await self.proc.communicate()
        self.output = out.decode("utf-8", "replace")
        assert self.proc.returncode is not None
        return self.proc.returncode

    def calls(self, kind: str) -> int:
        """Cumulative count of a statistics line (``Successful call``, ``Failed call``)."""
        match = re.search(rf"{kind}\s*\|\s*\d+\s*\|\s*(\d+)", self.output)
        assert match, self.output[-2000:]
        return int(match.group(1))


def config(sipp: Sipp, messages_dir: Path, password: str | None = None) -> ControllerConfig:
    return ControllerConfig(
        "pa-sipp",
        f"sip:127.0.0.1:{sipp.port}",
        username="pager" if password else None,
        password=password,
        zones=(ZoneConfig("atrium", "Atrium", "service"),),
        options={"local_host": "127.0.0.1", "messages_dir": str(messages_dir)},
    )


async def test_call_with_sipp_default_uas(tmp_path: Path, messages_dir: Path) -> None:
    async with Sipp(tmp_path, "-sn", "uas") as sipp:
        async with SipPagingDriver(config(sipp, messages_dir)) as driver:
            (result,) = await driver.play(["atrium"], "tone")
        assert await sipp.finish() == 0, sipp.output[-2000:]
    assert (result.outcome, result.reason) == ("played", "")
    report = driver.calls[-1]
    assert report.final_status == 200
    assert report.codec == "PCMU"
    assert report.remote_media == ("127.0.0.1", sipp.media_port)
    assert report.rtp is not None and report.rtp.packets > 20
    # SIPp echoed our RTP back: the stream really reached its media port.
    assert report.rtp_packets_received >= report.rtp.packets - 2
    assert report.hangup == "bye-ok"
    assert sipp.calls("Successful call") == 1
    assert sipp.calls("Failed call") == 0


async def test_digest_checked_by_sipp(tmp_path: Path, messages_dir: Path) -> None:
    scenario = ("-sf", str(AUTH_SCENARIO), "-set", "user", "pager", "-set", "pass", "s3cret")
    async with Sipp(tmp_path, *scenario) as sipp:
        async with SipPagingDriver(config(sipp, messages_dir, "s3cret")) as driver:
            (result,) = await driver.play(["atrium"], "tone")
        assert await sipp.finish() == 0, sipp.output[-2000:]
    assert result.outcome == "played"
    report = driver.calls[-1]
    assert report.authenticated
    assert report.hangup == "bye-ok"
    assert report.rtp_packets_received > 0
    assert sipp.calls("Successful call") == 1


async def test_wrong_password_refused_by_sipp(tmp_path: Path, messages_dir: Path) -> None:
    scenario = ("-sf", str(AUTH_SCENARIO), "-set", "user", "pager", "-set", "pass", "s3cret")
    async with Sipp(tmp_path, *scenario) as sipp:
        async with SipPagingDriver(config(sipp, messages_dir, "guess")) as driver:
            (result,) = await driver.play(["atrium"], "tone")
        assert await sipp.finish() != 0
    assert (result.outcome, result.reason) == ("failed", "forbidden (403 Forbidden)")
    assert sipp.calls("Failed call") == 1
