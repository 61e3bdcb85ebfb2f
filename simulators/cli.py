"""``mallsim``: run one of the device or police-platform simulators.

Each simulator lives in its own module ``simulators.<name>`` that provides
``configure_parser(parser)`` and ``async def run(args) -> int``. Modules are imported only
when their sub-command is used, so one simulator's heavy dependencies never slow another.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence

SIMULATORS: dict[str, str] = {
    "panel": "an alarm panel / emergency button transmitter speaking SIA DC-09",
    "camera": "one or many ONVIF cameras with snapshot, MJPEG and fault switches",
    "broadcast": "a public-address controller (HTTP) and SIP paging endpoint",
    "police": "the police alarm platform: subscribes, validates, sends receipts and commands",
    "mall": "a whole simulated mall from a site config",
    "gb28181": "a GB/T 28181 upper-level platform: registration, catalog, alarms, live video",
    "city": "many emulated mall hubs speaking the police-link contract (for the patrol side)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mallsim", description="mallhub device simulators")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="simulator", required=True, metavar="SIMULATOR")
    for name, help_text in SIMULATORS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(f"simulators.{name}")
        module.configure_parser(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(f"simulators.{args.simulator}")
    try:
        return int(asyncio.run(module.run(args)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
