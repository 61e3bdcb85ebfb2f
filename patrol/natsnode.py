"""NATS servers this project starts for itself: the patrol demo, the tests and the benchmark.

``NatsCluster`` runs one or more Debian ``nats-server`` processes on free loopback ports,
each with JetStream (its own store directory), an MQTT 3.1.1 listener and, with more than
one node, a cluster route to every other node. With ``tls`` the client and MQTT
listeners speak TLS only (``tls://`` and ``mqtts://``). Production runs its own NATS (see
docs/patrol.md); this module never listens beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from hub.broker import free_port

NATS_SERVER_FALLBACK = "/usr/sbin/nats-server"


def nats_server_path() -> str | None:
    found = shutil.which("nats-server")
    if found:
        return found
    return NATS_SERVER_FALLBACK if Path(NATS_SERVER_FALLBACK).exists() else None


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(slots=True)
class NatsUser:
    """A NATS/MQTT user and what it may publish and subscribe to (subjects, NATS syntax)."""

    name: str
    password: str
    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    publish_deny: list[str] = field(default_factory=list)
    admin: bool = False
    """Allowed everything (the patrol service)."""


@dataclass(slots=True, frozen=True)
class ServerTls:
    """The server's certificate and key (PEM) for the client and MQTT listeners; ``ca_file``
    is the CA the servers' own clients (``wait_jetstream``) trust."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    def block(self) -> str:
        return (
            f"tls {{ cert_file: {_quote(str(self.cert_file))}, "
            f"key_file: {_quote(str(self.key_file))}, timeout: 2 }}"
        )


@dataclass(slots=True)
class NatsNode:
    name: str
    dir: Path
    client_port: int
    cluster_port: int
    mqtt_port: int
    proc: subprocess.Popen[bytes] | None = None
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.client_port}"

    @property
    def mqtt_url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.mqtt_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _quote(s: str) -> str:
    return json.dumps(s)


def _list(items: list[str]) -> str:
    return "[" + ", ".join(_quote(s) for s in items) + "]"


def user_entry(u: NatsUser, password: str | None = None) -> str:
    """One entry of an ``authorization { users: [...] }`` block; ``password`` replaces the
    user's own (for example with ``$VARIABLE``, which nats-server reads from its
    environment)."""
    pw = password if password is not None else _quote(u.password)
    perm = ""
    if not u.admin:
        deny = f", deny: {_list(u.publish_deny)}" if u.publish_deny else ""
        perm = (
            f", permissions: {{ publish: {{ allow: {_list(u.publish)}{deny} }}, "
            f"subscribe: {{ allow: {_list(u.subscribe)} }} }}"
        )
    return f"{{ user: {_quote(u.name)}, password: {pw}{perm} }}"


def users_block(users: list[NatsUser]) -> str:
    lines = [f"    {user_entry(u)}" for u in users]
    return "authorization {\n  users: [\n" + ",\n".join(lines) + "\n  ]\n}\n"


class NatsCluster:
    """``nodes`` nats-server processes (1 = a single node, 3 = a cluster), JetStream + MQTT.

    ``users``: when given, every client must log in, and each user gets its allow lists
    (the MQTT listener uses the same users). ``tls``: the client and MQTT listeners
    require TLS with this certificate. Can kill and restart single nodes.
    """

    def __init__(
        self,
        workdir: Path,
        nodes: int = 3,
        *,
        users: list[NatsUser] | None = None,
        name: str = "mallhub",
        tls: ServerTls | None = None,
    ) -> None:
        exe = nats_server_path()
        if exe is None:
            raise RuntimeError("nats-server is not installed (apt-get install nats-server)")
        self.exe = exe
        self.dir = workdir
        self.name = name
        self.users = users
        self.tls = tls
        self.nodes = [
            NatsNode(
                f"{name}-{i + 1}",
                workdir / f"n{i + 1}",
                free_port(),
                free_port(),
                free_port(),
                tls=tls is not None,
            )
            for i in range(nodes)
        ]
        for node in self.nodes:
            node.dir.mkdir(parents=True, exist_ok=True)
            (node.dir / "nats.conf").write_text(self._conf(node), encoding="utf-8")

    def _conf(self, node: NatsNode) -> str:
        parts = [
            f"server_name: {_quote(node.name)}",
            f"listen: 127.0.0.1:{node.client_port}",
            "max_payload: 1MB",
            "jetstream {",
            f"  store_dir: {_quote(str(node.dir / 'js'))}",
            "  max_memory_store: 256MB",
            "  max_file_store: 4GB",
            "}",
            "mqtt {",
            f"  listen: 127.0.0.1:{node.mqtt_port}",
            "  ack_wait: 30s",
            "  max_ack_pending: 1024",
            *([f"  {self.tls.block()}"] if self.tls else []),
            "}",
        ]
        if self.tls is not None:
            parts.append(self.tls.block())
        if len(self.nodes) > 1:
            routes = ", ".join(f"nats-route://127.0.0.1:{n.cluster_port}" for n in self.nodes)
            parts += [
                "cluster {",
                f"  name: {_quote(self.name)}",
                f"  listen: 127.0.0.1:{node.cluster_port}",
                f"  routes: [{routes}]",
                "}",
            ]
        if self.users is not None:
            parts.append(users_block(self.users))
        return "\n".join(parts) + "\n"

    # --- addresses ---------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def mqtt_urls(self) -> list[str]:
        return [n.mqtt_url for n in self.nodes]

    # --- processes -----------------------------------------------------------------------

    def start_node(self, node: NatsNode) -> None:
        log = (node.dir / "nats.log").open("ab")
        node.proc = subprocess.Popen(
            [self.exe, "-c", str(node.dir / "nats.conf")],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()

    def _wait_ports(self, nodes: list[NatsNode], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while not (_port_open(node.client_port) and _port_open(node.mqtt_port)):
                if node.proc is not None and node.proc.poll() is not None:
                    raise RuntimeError(f"nats-server {node.name} exited: {self.log_tail(node)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server {node.name} did not open its ports")
                time.sleep(0.02)

    def log_tail(self, node: NatsNode, lines: int = 20) -> str:
        path = node.dir / "nats.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        try:
            for node in self.nodes:
                self.start_node(node)
            self._wait_ports(self.nodes)
        except BaseException:
            self.stop()
            raise

    def kill_node(self, node: NatsNode) -> None:
        """SIGKILL: no orderly shutdown, as in a power cut of that machine."""
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()
        node.proc = None

    def restart_node(self, node: NatsNode) -> None:
        self.kill_node(node)
        self.start_node(node)
        self._wait_ports([node])

    def stop(self) -> None:
        """Stop every node; always leaves no process behind."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(10)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
            node.proc = None

    async def wait_jetstream(self, within: float = 30.0, **connect: Any) -> None:
        """Until JetStream answers (a cluster first has to elect its meta leader)."""
        import nats
        from nats.errors import Error as NatsError
        from nats.js.errors import Error as JsError

        if self.tls is not None and "tls" not in connect:
            connect["tls"] = ssl.create_default_context(cafile=str(self.tls.ca_file))
        deadline = time.monotonic() + within
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                nc = await nats.connect(
                    servers=[n.url for n in self.nodes if n.alive()],
                    connect_timeout=2,
                    allow_reconnect=False,
                    **connect,
                )
            except (OSError, NatsError, TimeoutError) as exc:
                last = exc
                await asyncio.sleep(0.1)
                continue
            try:
                await nc.jetstream().account_info()
                return
            except (NatsError, JsError, TimeoutError) as exc:
                last = exc
            finally:
                await nc.close()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"JetStream did not become ready in {within} s: {last}")

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
