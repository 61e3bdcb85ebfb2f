"""``python -m bench NAME`` (``python -m bench --help`` lists them) or ``python -m bench all``.

Each benchmark prints a table with the hub against a baseline measured in the same run and
the goal's verdict. ``--json FILE`` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, cast

NAMES = (
    "latency",
    "throughput",
    "siacompare",
    "busy",
    "consolecost",
    "health",
    "video",
    "simcams",
    "soak",
    "city",
    "gbalarm",
    "demostart",
)


class BenchModule(Protocol):
    def configure(self, p: argparse.ArgumentParser) -> None: ...

    main: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]


def _module(name: str) -> BenchModule:
    return cast(BenchModule, importlib.import_module(f"bench.{name}"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    sub = p.add_subparsers(dest="bench", required=True)
    for name in NAMES:
        mod = _module(name)
        sp = sub.add_parser(
            name, help=(importlib.import_module(f"bench.{name}").__doc__ or "")[:70]
        )
        mod.configure(sp)
    all_p = sub.add_parser("all", help="every benchmark with its default size (soak last)")
    all_p.add_argument("--skip-soak", action="store_true", help="leave out the 10-minute soak")
    return p


async def _run_all(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in NAMES:
        if name == "soak" and args.skip_soak:
            continue
        print(f"\n=== {name} ===\n", flush=True)
        sub_args = parser.parse_args([name])
        results[name] = await _module(name).main(sub_args)
    return results


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bench == "all":
        results = asyncio.run(_run_all(args, parser))
    else:
        results = asyncio.run(_module(args.bench).main(args))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
