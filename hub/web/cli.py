"""``mallhub user …`` and ``mallhub token …``: accounts for the web console and the API.

There is no default account: the first admin is made with ``mallhub user add NAME --role
admin``, which asks for the password twice (``--password-stdin`` reads one line, for
scripts). Passwords and tokens are never printed except a new token, once.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

CLI_ACTOR = "cli"


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"mallhub: {message}", file=sys.stderr)
    return code


def _with_store(args: argparse.Namespace, work: Callable[[Any, Any], Awaitable[int]]) -> int:
    """Open the store named by ``--config`` (migrating it), run ``work(engine, writer)``."""
    from hub.cli import _load
    from hub.store import StoreWriter, create_engine, upgrade

    config = _load(args.config)
    if config is None:
        return EXIT_USAGE

    async def go() -> int:
        engine = create_engine(config.storage.url())
        try:
            await upgrade(engine)
            async with StoreWriter(engine) as writer:
                return await work(engine, writer)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except Exception as exc:
        from hub.store import StoreError, StoreUnavailable

        if isinstance(exc, StoreError | StoreUnavailable | OSError):
            return _fail(f"cannot use the store: {exc}")
        raise


def _read_password(args: argparse.Namespace) -> str | None:
    from hub.web.auth import AuthError, check_password_policy

    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Password (again): ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            _fail("no password given")
            return None
        if password != again:
            _fail("the passwords do not match")
            return None
    try:
        check_password_policy(password)
    except AuthError as exc:
        _fail(str(exc))
        return None
    return password


def cmd_user_add(args: argparse.Namespace) -> int:
    from hub.web.auth import AuthError, CreateUser, check_role, check_user_name, hash_password

    try:
        name = check_user_name(args.name)
        role = check_role(args.role)
    except AuthError as exc:
        return _fail(str(exc), EXIT_USAGE)
    password = _read_password(args)
    if password is None:
        return EXIT_USAGE
    pw_hash = hash_password(password)

    async def work(engine: Any, writer: Any) -> int:
        try:
            await writer.submit(CreateUser(name, role, pw_hash, CLI_ACTOR))
        except AuthError as exc:
            return _fail(str(exc))
        print(f"user {name} added with role {role}")
        return EXIT_OK

    return _with_store(args, work)


def cmd_user_list(args: argparse.Namespace) -> int:
    from hub.store.writer import now_utc
    from hub.web.auth import list_users

    async def work(engine: Any, writer: Any) -> int:
        users = await list_users(engine)
        if not users:
            print("no users (add one: mallhub user add NAME --role admin --config FILE)")
            return EXIT_OK
        now = now_utc()
        print(f"{'name':<24} {'role':<11} state")
        for u in users:
            state = "disabled" if u.disabled else "locked" if u.locked(now) else "active"
            print(f"{u.name:<24} {u.role:<11} {state}")
        return EXIT_OK

    return _with_store(args, work)


def cmd_user_set(args: argparse.Namespace, **change: Any) -> int:
    from hub.web.auth import UpdateUser, UserNotFound

    async def work(engine: Any, writer: Any) -> int:
        try:
            await writer.submit(UpdateUser(args.name, CLI_ACTOR, **change))
        except UserNotFound as exc:
            return _fail(str(exc))
        what = ", ".join(change)
        print(f"user {args.name}: {what} done")
        return EXIT_OK

    return _with_store(args, work)


def cmd_user_disable(args: argparse.Namespace) -> int:
    return cmd_user_set(args, disabled=True)


def cmd_user_enable(args: argparse.Namespace) -> int:
    return cmd_user_set(args, disabled=False, unlock=True)


def cmd_user_password(args: argparse.Namespace) -> int:
    from hub.web.auth import hash_password

    password = _read_password(args)
    if password is None:
        return EXIT_USAGE
    return cmd_user_set(args, password_hash=hash_password(password))


def cmd_token_create(args: argparse.Namespace) -> int:
    from hub.web.auth import CreateToken, UserNotFound, new_token, token_hash

    if not args.name.strip() or len(args.name) > 64:
        return _fail("a token name has 1-64 characters", EXIT_USAGE)
    token = new_token()

    async def work(engine: Any, writer: Any) -> int:
        try:
            token_id = await writer.submit(
                CreateToken(args.user, args.name.strip(), token_hash(token), CLI_ACTOR)
            )
        except UserNotFound as exc:
            return _fail(str(exc))
        print(
            f"token {token_id} ({args.name}) for {args.user}; it is shown only now:",
            file=sys.stderr,
        )
        print(token)
        return EXIT_OK

    return _with_store(args, work)


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from hub.web.auth import RevokeToken

    async def work(engine: Any, writer: Any) -> int:
        try:
            changed = await writer.submit(RevokeToken(args.id, CLI_ACTOR))
        except LookupError as exc:
            return _fail(str(exc).strip("'\""))
        print(f"token {args.id} {'revoked' if changed else 'was already revoked'}")
        return EXIT_OK

    return _with_store(args, work)


def cmd_token_list(args: argparse.Namespace) -> int:
    from hub.store.writer import iso
    from hub.web.auth import list_tokens

    async def work(engine: Any, writer: Any) -> int:
        for t in await list_tokens(engine):
            state = f"revoked {iso(t.revoked_at)}" if t.revoked_at else "active"
            print(f"{t.id:>5} {t.user:<20} {t.name:<24} {state}")
        return EXIT_OK

    return _with_store(args, work)


def register(sub: Any) -> None:
    """Add ``user`` and ``token`` to ``mallhub``'s sub-commands."""
    from hub.web.auth import ROLES

    def cfg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", required=True, help="site config (YAML)")

    user = sub.add_parser("user", help="web console and API users")
    us = user.add_subparsers(dest="user_cmd", required=True, metavar="ACTION")
    add = us.add_parser("add", help="add a user (asks for the password twice)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from one line of standard input",
    )
    cfg(add)
    add.set_defaults(func=cmd_user_add)
    ls = us.add_parser("list", help="list users")
    cfg(ls)
    ls.set_defaults(func=cmd_user_list)
    dis = us.add_parser("disable", help="disable a user (their sessions end)")
    dis.add_argument("name")
    cfg(dis)
    dis.set_defaults(func=cmd_user_disable)
    en = us.add_parser("enable", help="enable (and unlock) a user")
    en.add_argument("name")
    cfg(en)
    en.set_defaults(func=cmd_user_enable)
    pw = us.add_parser("password", help="set a user's password (and unlock)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    cfg(pw)
    pw.set_defaults(func=cmd_user_password)

    token = sub.add_parser("token", help="API tokens for machine clients")
    ts = token.add_subparsers(dest="token_cmd", required=True, metavar="ACTION")
    tc = ts.add_parser("create", help="create a token (printed once; only its hash is kept)")
    tc.add_argument("name")
    tc.add_argument("--user", required=True)
    cfg(tc)
    tc.set_defaults(func=cmd_token_create)
    tl = ts.add_parser("list", help="list tokens")
    cfg(tl)
    tl.set_defaults(func=cmd_token_list)
    tr = ts.add_parser("revoke", help="revoke a token")
    tr.add_argument("id", type=int)
    cfg(tr)
    tr.set_defaults(func=cmd_token_revoke)
