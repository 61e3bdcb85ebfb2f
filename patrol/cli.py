"""``mallhub patrol …``: the police-side service's commands.

``hub.cli`` loads this module by name when it is installed (see ``PLUGIN_COMMANDS``), so the
hub never depends on the patrol package.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from typing import Any

from hub.config import ConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

log = logging.getLogger("mallhub.patrol")


def _config(path: str) -> Any:
    from patrol.config import load_patrol_config

    try:
        return load_patrol_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration ({len(exc.errors)} problem(s))", file=sys.stderr)
        for where, msg in exc.errors:
            print(f"  {where}: {msg}", file=sys.stderr)
        return None


async def _serve(config: Any, *, workers: int | None, web: bool) -> int:
    from hub.signals import stop_on_signals, wait_stop
    from patrol.models import StoreVersionError
    from patrol.service import PatrolService

    with stop_on_signals() as stop:
        try:
            async with PatrolService(config, workers=workers, web=web) as svc:
                if svc.web is not None:
                    log.info("city overview on %s", svc.web.url)
                log.info("patrol service running with %d worker(s)", svc.n_workers)
                await wait_stop(stop)
        except StoreVersionError as exc:
            print(f"mallhub patrol: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            print(f"mallhub patrol: cannot start: {exc}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if config is None:
        return EXIT_USAGE
    return asyncio.run(_serve(config, workers=args.workers, web=True))


def cmd_worker(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if config is None:
        return EXIT_USAGE
    return asyncio.run(_serve(config, workers=args.workers, web=False))


def cmd_web(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if config is None:
        return EXIT_USAGE
    return asyncio.run(_serve(config, workers=0, web=True))


def cmd_user_add(args: argparse.Namespace) -> int:
    from hub.web.auth import AuthError
    from patrol.auth import add_user
    from patrol.models import open_store

    config = _config(args.config)
    if config is None:
        return EXIT_USAGE
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("mallhub patrol user add: the passwords differ", file=sys.stderr)
            return EXIT_USAGE

    async def go() -> int:
        engine = await open_store(config.database_url.get_secret_value())
        try:
            await add_user(
                engine,
                args.name,
                args.role,
                password,
                args.display_name or "",
                supervisor=args.supervisor or "",
            )
        except AuthError as exc:
            print(f"mallhub patrol user add: {exc}", file=sys.stderr)
            return EXIT_USAGE
        finally:
            await engine.dispose()
        print(f"user {args.name} ({args.role}) added")
        return EXIT_OK

    return asyncio.run(go())


def cmd_check(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if config is None:
        return EXIT_USAGE
    print(
        f"{args.config}: valid — {len(config.nats.servers)} NATS server(s), "
        f"{len(config.malls)} mall(s) registered"
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from patrol.demo import run_demo

    return asyncio.run(run_demo(args))


def cmd_accounts(args: argparse.Namespace) -> int:
    from patrol.accounts import accounts_main

    return accounts_main(args)


ROLES = ("officer", "supervisor", "admin")
"""As ``patrol.auth.ROLES``; repeated so that building ``mallhub``'s parser stays light."""


def register(sub: Any) -> None:
    patrol = sub.add_parser(
        "patrol", help="the police side: every mall of a city on one screen (NATS JetStream)"
    )
    ps = patrol.add_subparsers(dest="patrol_cmd", required=True, metavar="ACTION")

    def cfg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", required=True, help="patrol config (YAML)")

    run = ps.add_parser("run", help="run workers and the web app from a config file")
    cfg(run)
    run.add_argument("--workers", type=int, default=None, help="consumer tasks (default: config)")
    run.set_defaults(func=cmd_run)
    worker = ps.add_parser("worker", help="run consumer workers only (scale out: run more)")
    cfg(worker)
    worker.add_argument("--workers", type=int, default=None)
    worker.set_defaults(func=cmd_worker)
    webp = ps.add_parser("web", help="run the city overview web app only")
    cfg(webp)
    webp.set_defaults(func=cmd_web)
    check = ps.add_parser("check", help="validate a patrol config; exit 2 if invalid")
    cfg(check)
    check.set_defaults(func=cmd_check)

    user = ps.add_parser("user", help="officers' accounts")
    us = user.add_subparsers(dest="user_cmd", required=True, metavar="ACTION")
    add = us.add_parser("add", help="add an officer (asks for the password twice)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--display-name", default="", help="how malls see the officer (e.g. 张警官)")
    add.add_argument(
        "--supervisor", default="", help="the supervisor's user name (overdue notices go there)"
    )
    add.add_argument("--password-stdin", action="store_true", help="read one line from stdin")
    cfg(add)
    add.set_defaults(func=cmd_user_add)

    demo = ps.add_parser(
        "demo", help="one NATS node, the store, N emulated malls and the service, on this machine"
    )
    demo.add_argument("--malls", type=int, default=20, help="emulated malls (1-2000)")
    demo.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    demo.add_argument("--http-port", type=int, default=8090, help="web port (0: any free one)")
    demo.add_argument("--press-every", type=float, default=15.0, help="mean s between alarms")
    demo.set_defaults(func=cmd_demo)

    acc = ps.add_parser(
        "nats-accounts", help="print a nats-server authorization block: one user per mall"
    )
    acc.add_argument("--malls", required=True, help="file with one site id per line")
    acc.add_argument("--patrol-user", default="patrol")
    acc.set_defaults(func=cmd_accounts)
