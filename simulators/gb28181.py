"""``mallsim gb28181``: a GB/T 28181 upper-level platform for the hub to register to.

It prints each registration, the catalog it then queries, every alarm it receives and, with
``--invite``, the result of playing each camera channel for a few seconds (RTP with the
offered SSRC, a PS pack header first, pictures decoded). The Digest password comes from the
environment variable ``MALLSIM_GB28181_PASSWORD`` (no default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from simulators.gb28181_media import invite
from simulators.gb28181_platform import ReceivedAlarm, UpperPlatform

PASSWORD_ENV = "MALLSIM_GB28181_PASSWORD"


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (UDP and TCP)")
    p.add_argument("--port", type=int, default=5060, help="SIP port (0: any free port)")
    p.add_argument("--id", default="34020000002000000001", help="this platform's 20-digit ID")
    p.add_argument("--expires", type=int, default=3600, help="registration expiry granted (s)")
    p.add_argument("--invite", action="store_true", help="play each camera channel once")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each play (s)")
    p.add_argument("--duration", type=float, help="stop after S seconds")


def _print(text: str) -> None:
    print(text)
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> int:
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        print(f"mallsim gb28181: set {PASSWORD_ENV} to the Digest password", file=sys.stderr)
        return 2
    if len(args.id) != 20 or not args.id.isdigit():
        print(f"mallsim gb28181: --id {args.id!r} is not 20 digits", file=sys.stderr)
        return 2

    def on_alarm(alarm: ReceivedAlarm) -> None:
        f = alarm.fields
        _print(
            f"alarm from {alarm.device_id}: channel {f.get('DeviceID')} priority "
            f"{f.get('AlarmPriority')} method {f.get('AlarmMethod')} type {f.get('AlarmType')} "
            f"at {f.get('AlarmTime')}: {f.get('AlarmDescription')} (cameras {alarm.related})"
        )

    platform = UpperPlatform(
        platform_id=args.id,
        password=password,
        host=args.host,
        port=args.port,
        expires=args.expires,
        on_alarm=on_alarm,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await platform.start()
    except OSError as exc:
        print(f"mallsim gb28181: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    _print(f"upper platform {args.id} listening on {args.host}:{platform.port} (UDP and TCP)")
    seen: dict[str, int] = {}
    try:
        async with asyncio.timeout(args.duration):
            while not stop.is_set():
                for device_id, registration in list(platform.registrations.items()):
                    if seen.get(device_id) == registration.registered:
                        continue
                    seen[device_id] = registration.registered
                    _print(
                        f"registered: {device_id} from {registration.addr[0]}:"
                        f"{registration.addr[1]} over {registration.transport}"
                    )
                    await _explore(platform, device_id, args)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await platform.changed.wait()
                platform.changed.clear()
    except TimeoutError:
        pass
    finally:
        await platform.stop()
    return 0


async def _explore(platform: UpperPlatform, device_id: str, args: argparse.Namespace) -> None:
    try:
        items = await platform.catalog(device_id)
    except (TimeoutError, RuntimeError) as exc:
        _print(f"catalog of {device_id}: {exc or 'no answer'}")
        return
    _print(f"catalog of {device_id}: {len(items)} channels")
    for item in items:
        _print(
            f"  {item.get('DeviceID')} {item.get('Status', '?'):3} {item.get('Name')}"
            f" — {item.get('Address', '')}"
        )
    if not args.invite:
        return
    for item in items:
        channel = item.get("DeviceID", "")
        if channel[10:13] != "132":
            continue
        check = await invite(platform, device_id, channel, seconds=args.seconds)
        _print(
            f"  play {channel}: {check.status} {check.reason}; {check.packets} RTP packets, "
            f"{check.codec} {check.width}x{check.height}, {check.frames} pictures decoded"
            f"{' OK' if check.ok else ' FAILED ' + '; '.join(check.errors)}"
        )
