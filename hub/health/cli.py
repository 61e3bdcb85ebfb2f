"""``mallhub check``: the technician's one-shot probe of every device (see ``check``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from hub.config import ConfigError, load_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add ``check`` to the ``mallhub`` command line."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="probe every device once and report what works (exit 1 if a required one fails)",
        description=(
            "Probe every selected device once (cameras: reachability, clock, encoder settings "
            "and picture; broadcast controllers: status; alarm panels: from the hub's store; "
            "the police broker: reachability) and print a table grouped by floor and zone "
            "with the fix to try for each problem. Exit 0 when every required device works, "
            "1 when one does not, 2 for a bad config or selection."
        ),
    )
    p.add_argument("--config", "-c", required=True, help="site config (YAML)")
    p.add_argument("--device", help="check only this device (id)")
    p.add_argument("--floor", help="check only the devices on this floor")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-video", action="store_true", help="skip the camera picture checks")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from hub.health.check import CheckError, ProgressBar, dumps, render_table, run_check

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(
            f"{args.config}: invalid configuration ({len(exc.errors)} problem(s))", file=sys.stderr
        )
        for where, msg in exc.errors:
            print(f"  {where}: {msg}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = asyncio.run(
            run_check(
                config,
                device=args.device,
                floor=args.floor,
                video=not args.no_video,
                progress=None if args.json else ProgressBar(sys.stderr),
            )
        )
    except CheckError as exc:
        print(f"mallhub check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(dumps(report))
    else:
        render_table(report, sys.stdout)
    return EXIT_OK if report.ok else EXIT_FAILED
