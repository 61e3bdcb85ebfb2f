"""``mallsim panel``: one simulated panel from the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging

from simulators.panel.transmitter import PanelSimulator
from simulators.panel.wire import FAULTS, key_from_text

_log = logging.getLogger("simulators.panel")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mallsim panel``."""
    parser.add_argument("--target", required=True, metavar="HOST:PORT", help="receiver address")
    parser.add_argument("--account", required=True, help="account number (3-16 hex digits)")
    parser.add_argument("--prefix", default="0", help="account prefix (L)")
    parser.add_argument("--receiver", default=None, help="receiver number (R), omitted if unset")
    parser.add_argument("--key", default=None, help="AES key (see --key-format)")
    parser.add_argument("--key-format", choices=("ascii", "hex"), default="ascii")
    parser.add_argument("--encrypted", action="store_true", help="encrypt messages (needs --key)")
    link = parser.add_mutually_exclusive_group()
    link.add_argument("--tcp", dest="transport", action="store_const", const="tcp")
    link.add_argument("--udp", dest="transport", action="store_const", const="udp")
    parser.set_defaults(transport="tcp")
    parser.add_argument("--format", dest="payload_format", choices=("cid", "sia"), default="cid")
    parser.add_argument("--ack-timeout", type=float, default=2.0, help="seconds to wait for ACK")
    zones = {"press": "panic", "restore": "panic restore", "fire": "fire", "tamper": "tamper"}
    for name, what in zones.items():
        parser.add_argument(
            f"--{name}",
            type=int,
            action="append",
            default=[],
            metavar="ZONE",
            help=f"send a {what} for ZONE (repeatable)",
        )
    parser.add_argument(
        "--test",
        type=int,
        action="append",
        default=[],
        metavar="ZONE",
        help="send a manual test (601)",
    )
    parser.add_argument(
        "--unknown-code",
        type=int,
        action="append",
        default=[],
        metavar="ZONE",
        help="send an event code the receiver does not know",
    )
    parser.add_argument("--ac-loss", action="store_true")
    parser.add_argument("--ac-restore", action="store_true")
    parser.add_argument("--low-battery", action="store_true")
    parser.add_argument("--burst", type=int, default=0, metavar="N", help="send N alarms at once")
    parser.add_argument("--periodic-test", type=float, default=None, metavar="SECONDS")
    parser.add_argument(
        "--supervision",
        type=float,
        default=None,
        metavar="SECONDS",
        help="send NULL supervision messages every SECONDS",
    )
    parser.add_argument("--clock-skew", type=float, default=0.0, metavar="SECONDS")
    for fault in FAULTS:
        parser.add_argument(
            f"--{fault.replace('_', '-')}",
            action="store_true",
            help=f"inject fault '{fault}' into the first message",
        )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run this long (default: until every event is delivered, or for "
        "ever with --supervision/--periodic-test)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="give up delivering after this many seconds (without --duration)",
    )


async def run(args: argparse.Namespace) -> int:
    """``mallsim panel``: 0 when everything queued was delivered, 1 otherwise."""
    host, _, port_text = args.target.rpartition(":")
    if not host or not port_text.isdigit():
        _log.error("--target must be HOST:PORT")
        return 2
    key: bytes | None = None
    if args.encrypted:
        if args.key is None:
            _log.error("--encrypted needs --key")
            return 2
        try:
            key = key_from_text(args.key, args.key_format)
        except ValueError as exc:
            _log.error("bad --key: %s", exc)
            return 2
    panel = PanelSimulator(
        host,
        int(port_text),
        args.account,
        key=key,
        transport=args.transport,
        payload_format=args.payload_format,
        prefix=args.prefix,
        receiver=args.receiver,
        ack_timeout=args.ack_timeout,
        supervision_every=args.supervision,
        periodic_test_every=args.periodic_test,
    )
    async with panel:
        panel.clock_skew(args.clock_skew)
        for fault in FAULTS:
            if getattr(args, fault):
                panel.inject(fault)
        for zone in args.press:
            panel.press(zone)
        for zone in args.restore:
            panel.restore(zone)
        for zone in args.fire:
            panel.fire(zone)
        for zone in args.tamper:
            panel.tamper(zone)
        for zone in args.test:
            panel.test(zone)
        for zone in args.unknown_code:
            panel.unknown_code(zone)
        if args.ac_loss:
            panel.ac_loss()
        if args.ac_restore:
            panel.ac_restore()
        if args.low_battery:
            panel.low_battery()
        if args.burst:
            panel.burst(args.burst)
        if panel.pending == 0 and args.supervision is None and args.periodic_test is None:
            panel.supervision()
        try:
            if args.duration is not None:
                await asyncio.sleep(args.duration)
            elif args.supervision is not None or args.periodic_test is not None:
                await asyncio.Event().wait()  # until interrupted
            else:
                await panel.wait_idle(args.timeout)
        except TimeoutError:
            pass
        _log.info(
            "panel %s: sent=%d acked=%d naks=%d duh=%d resends=%d pending=%d",
            args.account,
            panel.sent,
            panel.acked,
            panel.naks,
            panel.duh,
            panel.resends,
            panel.pending,
        )
        return 0 if panel.pending == 0 else 1
