"""``mallhub demo``: a whole simulated mall, a broker, the police simulator and the hub.

Everything runs on this machine on free loopback ports, with SQLite in a fresh data
directory and a random camera password made for this run (there are no default passwords).
The police simulator's lines show what the police alarm platform receives.

Order: broker, police simulator, the simulated mall (its cameras answering), then the hub;
stopping goes the other way, so the hub never meets a camera that is not there yet or no
longer there. Ctrl-C in a terminal signals every process of the foreground process group at
once; the broker and the simulators are therefore in process groups of their own, and only
the demo hears it (or the hang-up of a closed terminal) and stops them in that order. A
temporary data directory is removed at exit; one given with ``--data-dir`` is kept (and may
be used again: the console login is renewed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hub.broker import EmbeddedBroker, LocalMosquitto, free_port, mosquitto_path
from hub.config import ConfigError, load_config
from hub.signals import stop_on_signals, wait_stop

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.yaml"
CAMERAS = 8
DEVICES_READY_S = 30.0
"""How long the simulated cameras may take to answer before the demo gives up."""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@asynccontextmanager
async def _child(
    name: str, args: list[str], env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A simulator in its own process (and process group: see :func:`run_demo`); its lines
    go to our stdout."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.cli", *args, env=env, process_group=0
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.debug("%s exited with %s", name, proc.returncode)


async def run_demo(args: argparse.Namespace) -> int:
    if not DEMO_CONFIG.exists():
        print(
            f"mallhub demo: {DEMO_CONFIG} is missing (run from a source checkout)", file=sys.stderr
        )
        return 2
    if args.http_port and not _port_free(args.http_port):
        print(
            f"mallhub demo: port {args.http_port} is in use; choose another with --http-port N "
            "(0 picks a free one)",
            file=sys.stderr,
        )
        return 2
    temporary = args.data_dir is None
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mallhub-demo-"))
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"mallhub demo: cannot use {data_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    http_port = args.http_port or free_port()
    env = dict(os.environ)
    env.update(
        DEMO_DATA_DIR=str(data_dir),
        DEMO_HTTP_PORT=str(http_port),
        DEMO_SIA_PORT=str(free_port()),
        DEMO_PA_PORT=str(free_port()),
        DEMO_CAMERA_PASSWORD=secrets.token_urlsafe(12),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("DEMO_PUBLIC_URL", f"http://127.0.0.1:{http_port}")
    for i in range(1, CAMERAS + 1):
        env[f"DEMO_CAM{i}_PORT"] = str(free_port())

    try:
        # A closed terminal hangs up the demo's process group only: the demo stops its
        # children then, as on Ctrl-C, instead of leaving them running.
        with stop_on_signals(hangup=True) as stop:
            return await _demo(args, env, data_dir, http_port, stop)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
            print(
                f"mallhub demo: removed its data directory {data_dir} (--data-dir DIR keeps one)",
                flush=True,
            )
        else:
            print(f"mallhub demo: data kept in {data_dir}", flush=True)


async def _demo(
    args: argparse.Namespace,
    env: dict[str, str],
    data_dir: Path,
    http_port: int,
    stop: asyncio.Event,
) -> int:
    async with AsyncExitStack() as stack:
        if args.broker:
            broker_url = args.broker
            what = f"external broker {broker_url}"
        elif mosquitto_path():
            mq = await stack.enter_async_context(
                LocalMosquitto(data_dir / "mosquitto", own_process_group=True)
            )
            broker_url = mq.url
            what = f"mosquitto on {broker_url}"
        else:
            eb = await stack.enter_async_context(EmbeddedBroker())
            broker_url = eb.url
            env["DEMO_MQTT_PROTOCOL"] = "3.1.1"
            what = f"embedded MQTT 3.1.1 broker on {broker_url} (no mosquitto installed)"
        env["DEMO_BROKER_URL"] = broker_url
        try:
            config = load_config(DEMO_CONFIG, env=env)
        except ConfigError as exc:
            for where, msg in exc.errors:
                print(f"mallhub demo: {where}: {msg}", file=sys.stderr)
            return 2
        print(
            f"mallhub demo — {config.site.name}\n"
            f"  broker:  {what}\n"
            f"  data:    {data_dir}\n"
            f"  police simulator lines follow (Ctrl-C stops the demo)",
            flush=True,
        )
        await stack.enter_async_context(
            _child(
                "police",
                # A cluster's nodes share their messages: the simulator needs only one.
                ["police", "--broker", broker_url.split(",")[0].strip(), "--site", config.site.id],
                env,
            )
        )
        mall = await stack.enter_async_context(
            _child(
                "mall",
                [
                    "mall",
                    "--config",
                    str(DEMO_CONFIG),
                    "--scenario",
                    "demo",
                    "--press-every",
                    "12",
                    "--first-press",
                    "3",
                ],
                env,
            )
        )
        cameras = [int(env[f"DEMO_CAM{i}_PORT"]) for i in range(1, CAMERAS + 1)]
        # Imported here, lazily, for start-up time: loading the hub's modules (seconds on a
        # small machine) overlaps with the broker, the police simulator and the mall starting.
        from hub.app import Hub

        if not await _devices_ready(mall, cameras, stop):
            if stop.is_set():
                return 0
            print("mallhub demo: the simulated mall did not start", file=sys.stderr)
            return 1
        hub = await stack.enter_async_context(Hub(config))
        await _console_login(hub)
        await wait_stop(stop, args.duration)
        print("mallhub demo: stopping", flush=True)
    return 0


async def _devices_ready(
    mall: asyncio.subprocess.Process, ports: list[int], stop: asyncio.Event
) -> bool:
    """Wait until every simulated camera accepts a connection (False: the mall process
    ended, the demo was stopped, or the cameras did not come up in time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEVICES_READY_S
    waiting = list(ports)
    while waiting:
        if mall.returncode is not None or stop.is_set() or loop.time() > deadline:
            return False
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", waiting[0]), 1.0
            )
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        waiting.pop(0)
    return True


async def _console_login(hub: Hub) -> None:
    """A console login for this demo run only: a fresh random password, shown once. A data
    directory from an earlier run already has the user: its password is renewed."""
    from hub.web.auth import (  # loaded with the hub
        AuthError,
        CreateUser,
        UpdateUser,
        hash_password_async,
    )

    password = secrets.token_urlsafe(12)
    hashed = await hash_password_async(password)
    try:
        await hub.submit(CreateUser("demo", "admin", hashed, "demo"))
    except AuthError:
        await hub.submit(
            UpdateUser("demo", "demo", role="admin", disabled=False, password_hash=hashed)
        )
    print(f"  console: {hub.web.url}  user: demo  password (this run only): {password}", flush=True)
