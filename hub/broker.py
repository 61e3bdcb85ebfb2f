"""Brokers the hub can start for itself: the demo and the tests, never production.

``LocalMosquitto`` runs an installed ``mosquitto`` on a free loopback port with a temporary
config; ``EmbeddedBroker`` is a pure-Python MQTT 3.1.1 broker (amqtt) for machines without
mosquitto. Both listen on 127.0.0.1 only and allow anonymous clients: they exist for one
process tree on one machine.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port() -> int:
    """A loopback TCP port nothing listens on, for a listener that starts a moment later.

    Chosen below the kernel's ephemeral range when it is known: a port from that range can be
    taken in the meantime by any outgoing connection of this machine (the hub's own, to a
    camera or a broker), which made a demo fail to bind its console. Ports handed out by this
    process are not handed out again, so two listeners started together never share one.
    """
    low = _ephemeral_low()
    if low > 12000:
        for _ in range(200):
            port = random.randrange(10000, low)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    _handed_out.add(port)
    return port


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.02)


def mosquitto_path() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


class LocalMosquitto:
    """``mosquitto`` on a free port; can be stopped and started again on the same port.

    With ``tls`` (paths ``ca``, ``cert``, ``key``) the main listener requires client
    certificates and a second, plain listener is opened on ``plain_port``. With
    ``own_process_group`` the broker is out of reach of the terminal's Ctrl-C, for a program
    that stops it itself, after its clients (the demo).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        tls: dict[str, Path] | None = None,
        persistence: bool = True,
        own_process_group: bool = False,
    ) -> None:
        exe = mosquitto_path()
        if exe is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.plain_port = free_port() if tls else self.port
        self.tls = tls
        self.own_process_group = own_process_group
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = self.dir / "mosquitto.conf"
        lines = [
            # Started as root, mosquitto would switch to the 'mosquitto' user, which cannot
            # write persistence or logs into our private temporary directory.
            f"user {getpass.getuser()}",
            "per_listener_settings false",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            "max_queued_messages 0",
            f"log_dest file {self.dir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"listener {self.port} 127.0.0.1",
        ]
        if tls:
            lines += [
                f"cafile {tls['ca']}",
                f"certfile {tls['cert']}",
                f"keyfile {tls['key']}",
                "require_certificate true",
                f"listener {self.plain_port} 127.0.0.1",
            ]
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def plain_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.plain_port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            process_group=0 if self.own_process_group else None,
        )
        try:
            wait_port(self.plain_port)
        except RuntimeError:
            err = b""
            if self.proc.poll() is not None and self.proc.stderr:
                err = self.proc.stderr.read()
            self.kill()
            raise RuntimeError(f"mosquitto did not start: {err.decode(errors='replace')}") from None

    def stop(self) -> None:
        """Orderly stop (the broker saves its sessions and retained messages)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


class EmbeddedBroker:
    """A pure-Python MQTT 3.1.1 broker in this process (amqtt), on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._broker = Broker(config)
        await self._broker.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
