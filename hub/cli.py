"""``mallhub``: run the hub, the demo, and the operator's and technician's tools."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hub import __version__
from hub.config import ConfigError, SiteConfig, json_schema, load_config
from hub.logs import setup_logging
from hub.signals import stop_on_signals, wait_stop

log = logging.getLogger("mallhub")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

PLUGIN_COMMANDS = (
    "hub.compliance.cli",
    "hub.health.cli",
    "hub.web.cli",
    "hub.linkage.cli",
    # The police side, when installed; the hub never imports it otherwise.
    "patrol.cli",
)


def _print_config_errors(path: str, exc: ConfigError) -> None:
    print(f"{path}: invalid configuration ({len(exc.errors)} problem(s))", file=sys.stderr)
    for where, msg in exc.errors:
        print(f"  {where}: {msg}", file=sys.stderr)


def _load(path: str) -> SiteConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        _print_config_errors(path, exc)
        return None


# Each sub-command imports the parts of the hub it runs when it runs (lazily, for start-up
# time): `mallhub config validate` or `mallhub db upgrade` must not load the web server,
# the drivers and the video checks first.


async def _run(config: SiteConfig) -> int:
    from hub.app import Hub

    with stop_on_signals() as stop:
        async with Hub(config):
            log.info(
                "hub for %s (%s) running; SIGTERM or Ctrl-C stops it",
                config.site.name,
                config.site.id,
            )
            await wait_stop(stop)
            log.info("stopping")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    return asyncio.run(_run(config))


def cmd_config(args: argparse.Namespace) -> int:
    if args.config_cmd == "schema":
        print(json_schema())
        return EXIT_OK
    config = _load(args.file)
    if config is None:
        return EXIT_USAGE
    n = sum(1 for _ in config.iter_device_ids())
    print(
        f"{args.file}: valid — site {config.site.id}, {n} devices, "
        f"{len(config.linkage)} linkage rules"
    )
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    from hub.store import create_engine, safe_url, upgrade
    from hub.store.db import current_revision

    config = _load(args.config)
    if config is None:
        return EXIT_USAGE

    async def go() -> None:
        engine = create_engine(config.storage.url())
        try:
            await upgrade(engine)
            rev = await current_revision(engine)
            print(f"{safe_url(config.storage.url())}: at revision {rev}")
        finally:
            await engine.dispose()

    asyncio.run(go())
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from hub.store import create_engine
    from hub.store.audit import verify_chain

    config = _load(args.config)
    if config is None:
        return EXIT_USAGE

    async def go() -> int:
        engine = create_engine(config.storage.url())
        try:
            verdict = await verify_chain(engine)
        finally:
            await engine.dispose()
        if verdict.ok:
            print(f"audit log intact: {verdict.rows} records, hash chain verified")
            return EXIT_OK
        print(
            f"audit log BROKEN at record {verdict.first_bad_id}: {verdict.reason} "
            f"({verdict.rows} records before it verified)"
        )
        return EXIT_FAILED

    return asyncio.run(go())


def cmd_demo(args: argparse.Namespace) -> int:
    from hub.demo import run_demo

    return asyncio.run(run_demo(args))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mallhub", description="Alarm and CCTV integration hub for shopping malls"
    )
    p.add_argument("--version", action="version", version=f"mallhub {__version__}")
    p.add_argument("--log-json", action="store_true", help="log JSON lines instead of text")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the hub for one mall")
    run.add_argument("--config", "-c", required=True, help="site config (YAML)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser(
        "demo", help="run a whole simulated mall, the hub, a broker and the police simulator"
    )
    demo.add_argument(
        "--broker",
        help="use this broker (mqtt://host:port; a cluster's nodes comma-separated)",
    )
    demo.add_argument("--http-port", type=int, default=8080, help="web console port")
    demo.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    demo.add_argument(
        "--data-dir", type=Path, default=None, help="keep data here (else a temporary dir, removed)"
    )
    demo.set_defaults(func=cmd_demo)

    cfg = sub.add_parser("config", help="validate a config or print its JSON Schema")
    cfg_sub = cfg.add_subparsers(dest="config_cmd", required=True)
    v = cfg_sub.add_parser("validate", help="check a site config; exit 2 if invalid")
    v.add_argument("file")
    cfg_sub.add_parser("schema", help="print the config's JSON Schema")
    cfg.set_defaults(func=cmd_config)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_cmd", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("--config", "-c", required=True)
    db.set_defaults(func=cmd_db)

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_cmd", required=True)
    ver = audit_sub.add_parser("verify", help="verify the hash chain; report the first break")
    ver.add_argument("--config", "-c", required=True)
    audit.set_defaults(func=cmd_audit)

    # Sub-commands owned by other parts of the hub: each module offers
    # ``register(subparsers)`` and sets ``func`` on the parsers it adds.
    for module_name in PLUGIN_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(json_lines=args.log_json, verbose=args.verbose)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
