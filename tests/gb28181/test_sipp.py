"""The lower-level platform against SIPp (Debian's sip-tester) playing the upper platform.

SIPp checks our Digest credentials with its own code, sends a Catalog query, and checks
that each Response MESSAGE is a catalog; it exits 0 only when every call of its scenario
(registration + query, each response, the unregistration) succeeded. Its message trace is
then read to check that the responses list every configured channel.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Literal

import pytest

from adapters.gb28181.model import LinkState, PlatformConfig, PlatformHooks
from adapters.gb28181.platform import LowerPlatform

from ..broadcast.test_sipp import free_udp_port, udp_port_bound
from ..support.wait import wait_until
from .conftest import HUB_ID, SERVER_ID, channels

SIPP = shutil.which("sipp")
SCENARIO = Path(__file__).with_name("sipp_upper_platform.xml")
PASSWORD = "sipp-gb-secret"

pytestmark = pytest.mark.skipif(
    SIPP is None, reason="sipp not installed (apt-get install sip-tester)"
)


def read_trace(workdir: Path) -> str:
    (trace,) = workdir.glob("*_messages.log")
    return trace.read_bytes().decode("gb18030", "replace")


def tcp_port_listening(port: int) -> bool:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return True
    return False


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_registers_to_sipp_and_answers_its_catalog_query(
    tmp_path: Path, transport: Literal["UDP", "TCP"]
) -> None:
    assert SIPP is not None
    chans = channels(cameras=3, buttons=2)
    per_message = 2  # 5 channels → 3 Response MESSAGEs
    port = free_udp_port()
    # Registration and query, three responses, and over UDP the unregistration. Over TCP SIPp
    # counts a call as failed when the connection closes right after its final response, as
    # ours does once unregistered; the TCP unregistration is checked against the simulator.
    calls = 1 + 3 + (1 if transport == "UDP" else 0)
    proc = await asyncio.create_subprocess_exec(
        SIPP, "-sf", str(SCENARIO),
        "-set", "devid", HUB_ID, "-set", "srvid", SERVER_ID, "-set", "pass", PASSWORD,
        "-i", "127.0.0.1", "-p", str(port), "-cp", str(free_udp_port()),
        "-t", "u1" if transport == "UDP" else "t1",
        "-m", str(calls), "-nostdin", "-trace_msg", "-trace_err",
        "-timeout", "30s", "-timeout_error",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        listening = udp_port_bound if transport == "UDP" else tcp_port_listening
        await wait_until(lambda: listening(port), within=10, what="SIPp listening")
        cfg = PlatformConfig(
            device_id=HUB_ID,
            server_id=SERVER_ID,
            server_domain=SERVER_ID[:10],
            server_host="127.0.0.1",
            server_port=port,
            password=PASSWORD,
            local_host="127.0.0.1",
            catalog_per_message=per_message,
            transport=transport,
            keepalive_interval_s=60,
            t1_s=0.1,
        )
        states: list[LinkState] = []
        hooks = PlatformHooks(channels=lambda: chans, on_link_state=states.append)
        async with LowerPlatform(cfg, hooks) as platform:
            # SIPp queries the moment it accepts the registration, so all of it may be over
            # (and, over TCP, SIPp gone) before a poll sees the platform registered.
            await wait_until(
                lambda: platform.queries.counters["reply_answered"] == 3, what="3 responses"
            )
            (registered, *_) = states
            assert registered.online and registered.server_id_seen == "3402000000"
        async with asyncio.timeout(30):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = out.decode("utf-8", "replace")
    assert proc.returncode == 0, output[-3000:]
    assert platform.counters["unregistered"] == (1 if transport == "UDP" else 0)
    text = await asyncio.to_thread(read_trace, tmp_path)
    sums = re.findall(r"<SumNum>(\d+)</SumNum>", text)
    listed = re.findall(r"<Item>\s*<DeviceID>(\d{20})</DeviceID>", text)
    assert sums == ["5", "5", "5"]
    assert sorted(listed) == sorted(c.channel_id for c in chans)
