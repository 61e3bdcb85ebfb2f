"""``mallhub testmode start|stop|list``: test mode from the technician's command line.

The command writes the ``test_mode`` table and the audit log through a store writer of its
own (safe while the hub runs: every write transaction takes the store-wide lock). The running
hub notices within ``alarms.test_mode_poll_s`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from hub.config import ConfigError, SiteConfig, load_config
from hub.linkage.testmode import (
    STOPPED,
    EndTestMode,
    Entry,
    StartTestMode,
    TestModeError,
    check_minutes,
    resolve_target,
)
from hub.site import SiteIndex
from hub.store import StoreWriter, create_engine, upgrade
from hub.store.models import TestMode
from hub.store.writer import iso, now_utc

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add ``testmode`` to ``mallhub``'s sub-commands."""
    tm = subparsers.add_parser(
        "testmode", help="put a device or zone into test mode (alarms go out as info.test)"
    )
    sub = tm.add_subparsers(dest="testmode_cmd", required=True)

    start = sub.add_parser("start", help="start test mode for a limited time")
    start.add_argument("--config", "-c", required=True, help="site config (YAML)")
    _target_args(start)
    start.add_argument("--minutes", type=float, required=True, help="how long (minutes)")
    start.add_argument("--by", required=True, help="who (technician's name)")
    start.set_defaults(func=cmd_start)

    stop = sub.add_parser("stop", help="end test mode now")
    stop.add_argument("--config", "-c", required=True, help="site config (YAML)")
    group = _target_args(stop)
    group.add_argument("--id", type=int, help="the entry id (see list)")
    stop.add_argument("--by", required=True, help="who (technician's name)")
    stop.set_defaults(func=cmd_stop)

    ls = sub.add_parser("list", help="entries in test mode now")
    ls.add_argument("--config", "-c", required=True, help="site config (YAML)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_list)


def _target_args(p: argparse.ArgumentParser) -> Any:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--device", help="device id")
    group.add_argument("--zone", help="zone id (every device in it)")
    return group


def _load(path: str) -> SiteConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration", file=sys.stderr)
        for where, msg in exc.errors:
            print(f"  {where}: {msg}", file=sys.stderr)
        return None


def _target(args: argparse.Namespace) -> str | None:
    if getattr(args, "device", None):
        return f"device:{args.device}"
    if getattr(args, "zone", None):
        return f"zone:{args.zone}"
    return None


async def _with_writer(config: SiteConfig, op: Any) -> Any:
    """Apply one store operation through a writer of our own (safe beside a running hub:
    every write transaction takes the store-wide lock, so the audit chain stays linear)."""
    engine = create_engine(config.storage.url())
    try:
        await upgrade(engine)
        async with StoreWriter(engine) as writer:
            return await writer.submit(op)
    finally:
        await engine.dispose()


async def _start(config: SiteConfig, target: str, minutes: float, by: str) -> Entry:
    resolved = resolve_target(config, SiteIndex(config), target)
    duration: timedelta = check_minutes(config, minutes)
    if not by.strip():
        raise TestModeError("say who starts test mode (--by)")
    entry: Entry = await _with_writer(config, StartTestMode(resolved, duration, by.strip(), "cli"))
    return entry


async def _active(config: SiteConfig) -> list[Entry]:
    engine = create_engine(config.storage.url())
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(TestMode).where(TestMode.ended_at.is_(None), TestMode.until > now_utc())
                )
            ).all()
        return [Entry(r.id, r.target, r.started_at, r.until, r.by) for r in rows]
    finally:
        await engine.dispose()


async def _stop(
    config: SiteConfig, target: str | None, entry_id: int | None, by: str
) -> list[Entry]:
    resolved = resolve_target(config, SiteIndex(config), target) if target else None
    if not by.strip():
        raise TestModeError("say who ends test mode (--by)")
    ids = [
        e.id
        for e in await _active(config)
        if (resolved is None or e.target == resolved) and (entry_id is None or e.id == entry_id)
    ]
    if not ids:
        return []
    ended: list[Entry] = await _with_writer(
        config, EndTestMode(ids, STOPPED, f"cli:{by.strip()[:128]}", "cli")
    )
    return ended


def cmd_start(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    target = _target(args)
    assert target is not None
    try:
        entry = asyncio.run(_start(config, target, args.minutes, args.by))
    except TestModeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"test mode #{entry.id}: {entry.target} until {iso(entry.until)} (by {entry.by}); "
        f"a running hub applies it within {config.alarms.test_mode_poll_s:g} s"
    )
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    try:
        ended = asyncio.run(_stop(config, _target(args), args.id, args.by))
    except TestModeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not ended:
        print("nothing in test mode matched")
        return EXIT_FAILED
    for e in ended:
        print(f"test mode #{e.id}: {e.target} ended")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    entries = asyncio.run(_active(config))
    if args.json:
        print(json.dumps([e.as_dict() for e in entries], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not entries:
        print("nothing in test mode")
    for e in entries:
        print(f"#{e.id}  {e.target}  until {iso(e.until)}  by {e.by}")
    return EXIT_OK
