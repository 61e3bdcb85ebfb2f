"""``mallhub patrol demo``: a city on this machine — one NATS node (JetStream + MQTT), the
patrol store (SQLite), N emulated malls (``mallsim city`` as a child process) and the
patrol service with its web app. Prints the web address and a password for this run only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from patrol.natsnode import NatsCluster, nats_server_path
from simulators.city import MallSpec, city_specs


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.asynccontextmanager
async def _child(args: list[str]) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.cli",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def run_demo(args: argparse.Namespace) -> int:
    if not 1 <= args.malls <= 2000:
        print("mallhub patrol demo: --malls is between 1 and 2000", file=sys.stderr)
        return 2
    if args.http_port and not _port_free(args.http_port):
        print(
            f"mallhub patrol demo: port {args.http_port} is in use; choose another with "
            "--http-port N (0 picks a free one)",
            file=sys.stderr,
        )
        return 2
    if nats_server_path() is None:
        print("mallhub patrol demo: nats-server is not installed (apt-get install nats-server)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="mallhub-patrol-demo-"))
    try:
        return await _demo(args, work, city_specs(args.malls))
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _demo(args: argparse.Namespace, work: Path, specs: list[MallSpec]) -> int:
    from hub.signals import stop_on_signals, wait_stop
    from patrol.auth import add_user
    from patrol.config import parse_patrol_config
    from patrol.service import PatrolService

    with stop_on_signals() as stop:
        async with NatsCluster(work / "nats", 1) as cluster:
            await cluster.wait_jetstream()
            config = parse_patrol_config(
                {
                    "nats": {"servers": cluster.urls, "replicas": 1},
                    "database_url": f"sqlite+aiosqlite:///{work / 'patrol.db'}",
                    "workers": 2,
                    "http": {"host": "127.0.0.1", "port": args.http_port},
                    "malls": [
                        {"site_id": s.site_id, "name": s.name, "district": s.district}
                        for s in specs
                    ],
                },
                env={},
            )
            async with PatrolService(config) as svc:
                assert svc.store is not None and svc.web is not None
                password = secrets.token_urlsafe(12)
                await add_user(svc.store.engine, "demo", "supervisor", password, "值班民警", "demo")
                print(
                    f"mallhub patrol demo — {args.malls} emulated malls\n"
                    f"  NATS:     {cluster.urls[0]} (JetStream, MQTT on {cluster.mqtt_urls[0]})\n"
                    f"  overview: {svc.web.url}  user: demo  password (this run only): "
                    f"{password}\n"
                    f"  Ctrl-C stops the demo",
                    flush=True,
                )
                city = [
                    "city",
                    "--broker",
                    cluster.mqtt_urls[0],
                    "--malls",
                    str(args.malls),
                    "--press-every",
                    str(args.press_every),
                    "--change-every",
                    "30",
                ]
                async with _child(city):
                    await wait_stop(stop, args.duration)
                print(
                    f"mallhub patrol demo: stopping ({svc.stats.events_stored} events stored, "
                    f"{svc.stats.duplicates} duplicate deliveries)",
                    flush=True,
                )
    return 0
