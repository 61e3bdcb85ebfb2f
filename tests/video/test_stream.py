"""The stream reader's pure parts (frame rate from timestamps and arrivals) and its errors:
hostile or broken servers give one clear adapter error, never the password, never a line on
the terminal."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from adapters.errors import AdapterError, DeviceUnreachable
from adapters.onvif.stream import SETTLE_S, measure_rate, read_stream

SECRET = "s3cret-Pa55"


def stamps(
    n: int, fps: float, start: float, arrival_fps: float | None = None
) -> list[tuple[float, float]]:
    arrive = arrival_fps or fps
    return [(start + i / arrive, i / fps) for i in range(n)]


def test_the_opening_burst_is_left_out_of_the_rate() -> None:
    opened = 100.0
    # 50 frames buffered while FFmpeg probed the stream arrive within 10 ms of opening ...
    burst: list[tuple[float, float | None]] = [(opened + i * 0.0002, i / 25) for i in range(50)]
    # ... then the stream runs at its pace.
    live = [(opened + SETTLE_S + 0.01 + i / 25, 2.0 + i / 25) for i in range(75)]
    rate = measure_rate([*burst, *live], opened)
    assert rate is not None
    assert rate.fps == pytest.approx(25, rel=0.01)
    assert rate.packets == 75


def test_timestamps_promising_more_than_arrives_give_the_arrival_rate() -> None:
    # A camera stamping 25 fps while only 10 pictures a second arrive.
    rate = measure_rate(stamps(30, 25, 101.0, arrival_fps=10), 100.0)
    assert rate is not None
    assert rate.by_timestamps == pytest.approx(25)
    assert rate.fps == pytest.approx(10, rel=0.01)


def test_too_few_packets_measure_nothing() -> None:
    assert measure_rate(stamps(3, 25, 101.0), 100.0) is None


@pytest.fixture
def hang_up() -> Iterator[int]:
    """A TCP port that accepts and closes at once."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        srv.close()


def test_errors_and_debug_lines_never_carry_the_password(
    hang_up: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AdapterError) as info:
        read_stream(
            f"rtsp://127.0.0.1:{hang_up}/main",
            device_id="cam-1",
            username="admin",
            password=SECRET,
            open_timeout=2,
            read_timeout=2,
        )
    assert SECRET not in str(info.value)
    assert f"127.0.0.1:{hang_up}/main" in info.value.message
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_a_port_that_never_answers_times_out_as_asked() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)  # accepts into the backlog and never says a word
        with pytest.raises(DeviceUnreachable):
            read_stream(
                f"rtsp://127.0.0.1:{srv.getsockname()[1]}/main",
                device_id="cam-1",
                open_timeout=1.0,
                read_timeout=1.0,
            )


def test_nothing_from_ffmpeg_reaches_the_terminal() -> None:
    # In a fresh process, as a CLI would run it, with logging set up for the terminal.
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "from adapters.onvif.stream import read_stream\n"
        "from adapters.errors import AdapterError\n"
        "try:\n"
        "    read_stream('rtsp://127.0.0.1:1/x', device_id='c', open_timeout=2)\n"
        "except AdapterError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "DeviceUnreachable"
    assert run.stderr == ""
