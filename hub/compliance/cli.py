"""``mallhub compliance`` (the report) and ``mallhub records`` (drills, trainings, hazards,
attestations). Bad input exits with 2 and a clear message, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import ConfigError, SiteConfig, load_config
from hub.store import StoreUnavailable, StoreWriter, create_engine, safe_url, upgrade
from hub.store.writer import iso, now_utc

from .engine import ComplianceResult, evaluate
from .load import load_facts
from .records import (
    RECORD_KINDS,
    AddRecord,
    CloseHazard,
    RecordError,
    RecordNotFound,
    end_of_day,
    list_records,
    new_attestation,
    new_drill,
    new_hazard,
    new_review,
    new_training,
    parse_day,
)
from .report import LANGS, render_html, report_json
from .rules import ATTESTABLE, DRILL_TYPES, day

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

T = TypeVar("T")


def _error(message: str) -> None:
    print(f"mallhub: error: {message}", file=sys.stderr)


def _load(path: str) -> SiteConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration ({len(exc.errors)} problem(s))", file=sys.stderr)
        for where, msg in exc.errors:
            print(f"  {where}: {msg}", file=sys.stderr)
        return None


def _with_store(config: SiteConfig, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Open (and migrate) the store, run ``work``, close it."""

    async def go() -> T:
        engine = create_engine(config.storage.url())
        try:
            await upgrade(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _store_failed(config: SiteConfig, exc: Exception) -> int:
    _error(f"store {safe_url(config.storage.url())} failed: {type(exc).__name__}: {exc}")
    return EXIT_FAILED


# --- mallhub compliance ------------------------------------------------------------------------


def report_time(config: SiteConfig, text: str | None) -> datetime | None:
    """``--at``: a date means the end of that day (local); today or later means now."""
    if text is None:
        return None
    try:
        if "T" in text or " " in text.strip():
            at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            if at.tzinfo is None:
                raise RecordError(f"--at {text!r} needs a time zone (e.g. +08:00 or Z)")
        else:
            at = end_of_day(config, parse_day(text, "--at"))
    except ValueError as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"--at {text!r} is not a date (YYYY-MM-DD) or time") from None
    now = now_utc()
    if at > now:
        if at - now > timedelta(days=1):
            raise RecordError(f"--at {text} is in the future")
        return None
    return at


async def compute(engine: AsyncEngine, config: SiteConfig, at: datetime | None) -> ComplianceResult:
    """Evaluate as of ``at`` (None: now) from the store alone."""
    facts = await load_facts(engine, config, at)
    return evaluate(facts, facts.at)


def cmd_compliance(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    try:
        at = report_time(config, args.at)
    except RecordError as exc:
        _error(str(exc))
        return EXIT_USAGE
    lang = args.lang or config.site.language
    try:
        result = _with_store(config, lambda engine: compute(engine, config, at))
    except (SQLAlchemyError, OSError) as exc:
        return _store_failed(config, exc)
    if args.format == "html":
        text = render_html(result, lang)
    else:
        text = json.dumps(report_json(result), ensure_ascii=False, indent=2) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            _error(f"cannot write {args.output}: {exc.strerror or exc}")
            return EXIT_FAILED
        print(f"{args.output}: {result.overall} at {iso(result.at)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


# --- mallhub records ---------------------------------------------------------------------------


def _default_by() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"


def _submit(config: SiteConfig, op: Any) -> Any:
    async def work(engine: AsyncEngine) -> Any:
        async with StoreWriter(engine) as writer:
            return await writer.submit(op)

    return _with_store(config, work)


def cmd_records(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    try:
        if args.records_cmd == "list":
            return _list(config, args)
        op: AddRecord | CloseHazard
        if args.records_cmd == "add":
            op = _build(config, args)
        elif args.records_cmd == "close":
            op = CloseHazard(args.id, args.by or _default_by(), args.note or "")
        else:  # attest
            op = new_attestation(config, args.rule, args.by, args.evidence, args.expires)
        result = _submit(config, op)
    except (RecordError, RecordNotFound) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (SQLAlchemyError, OSError, StoreUnavailable) as exc:
        return _store_failed(config, exc)
    if isinstance(op, CloseHazard):
        print(f"closed hazard #{op.record_id} at {iso(result)}")
    else:
        print(f"added {op.kind} #{result}: {day(config, op.at)} {op.title}")
    return EXIT_OK


def _build(config: SiteConfig, args: argparse.Namespace) -> AddRecord:
    by = args.by or _default_by()
    kind = args.kind
    if kind == "drill":
        return new_drill(config, args.date, args.title, by, args.type)
    if kind == "training":
        return new_training(config, args.date, args.title, by)
    if kind == "hazard":
        return new_hazard(config, args.title, args.owner, args.due, by, args.date)
    return new_review(config, args.date, args.title, by)


def _list(config: SiteConfig, args: argparse.Namespace) -> int:
    try:
        rows = _with_store(config, lambda engine: list_records(engine, args.kind))
    except (SQLAlchemyError, OSError) as exc:
        return _store_failed(config, exc)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not rows:
        print("no records")
        return EXIT_OK
    for r in rows:
        extra = []
        if r.kind == "drill" and r.detail.get("type"):
            extra.append(f"type={r.detail['type']}")
        if r.owner:
            extra.append(f"owner={r.owner}")
        if r.due_at:
            extra.append(f"due={day(config, r.due_at)}")
        if r.kind == "hazard":
            extra.append(f"closed={day(config, r.closed_at)}" if r.closed_at else "open")
        if r.expires_at:
            extra.append(f"expires={day(config, r.expires_at)}")
        extra.append(f"by={r.created_by}")
        print(f"#{r.id:<5} {r.kind:<11} {day(config, r.at)}  {r.title}  [{', '.join(extra)}]")
    return EXIT_OK


# --- registration ------------------------------------------------------------------------------


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="site config (YAML)")


def register(sub: Any) -> None:
    """Add ``compliance`` and ``records`` to ``mallhub``'s sub-commands."""
    comp = sub.add_parser(
        "compliance",
        help="the compliance report, now or at the end of a past date",
        description="Evaluate the 平安商场 rules from the store and print a JSON or HTML report.",
    )
    _config_arg(comp)
    comp.add_argument("--at", help="YYYY-MM-DD (end of that day, local) or an ISO time")
    comp.add_argument("--format", choices=("json", "html"), default="json")
    comp.add_argument("--lang", choices=LANGS, default=None, help="default: site.language")
    comp.add_argument("--output", "-o", help="write to this file instead of stdout")
    comp.set_defaults(func=cmd_compliance)

    rec = sub.add_parser(
        "records",
        help="drills, trainings, hazard register and attestations",
        description=(
            "Records for the compliance rules: drills, trainings, the hazard register and "
            "attestations. Safe while the hub runs; every change is in the audit log."
        ),
    )
    rsub = rec.add_subparsers(dest="records_cmd", required=True, metavar="ACTION")

    add = rsub.add_parser("add", help="add a drill, training, hazard or register review")
    asub = add.add_subparsers(dest="kind", required=True, metavar="KIND")
    drill = asub.add_parser("drill", help="an emergency drill (DRILL-QUARTERLY)")
    drill.add_argument("--date", required=True, help="YYYY-MM-DD")
    drill.add_argument("--title", required=True)
    drill.add_argument("--type", choices=tuple(DRILL_TYPES), default=None)
    training = asub.add_parser("training", help="a security training (TRAIN-MONTHLY)")
    training.add_argument("--date", required=True, help="YYYY-MM-DD")
    training.add_argument("--title", required=True)
    hazard = asub.add_parser("hazard", help="a hazard with deadline and owner (HAZ-REGISTER)")
    hazard.add_argument("--title", required=True)
    hazard.add_argument("--owner", required=True, help="the person responsible for the fix")
    hazard.add_argument("--due", required=True, help="rectification deadline, YYYY-MM-DD")
    hazard.add_argument("--date", default=None, help="when it was found (default today)")
    review = asub.add_parser(
        "review", help="a monthly hazard review that found nothing new (HAZ-REGISTER)"
    )
    review.add_argument("--date", default=None, help="YYYY-MM-DD (default today)")
    review.add_argument("--title", default=None)
    for p in (drill, training, hazard, review):
        _config_arg(p)
        p.add_argument("--by", default=None, help="who enters it (default: login name)")

    close = rsub.add_parser("close", help="close a rectified hazard")
    csub = close.add_subparsers(dest="close_kind", required=True, metavar="KIND")
    close_h = csub.add_parser("hazard", help="mark a hazard rectified")
    close_h.add_argument("id", type=int, help="record id (see records list)")
    _config_arg(close_h)
    close_h.add_argument("--by", default=None)
    close_h.add_argument("--note", default=None)

    attest = rsub.add_parser("attest", help="declare a rule met: " + ", ".join(ATTESTABLE))
    attest.add_argument("rule", help="rule id, e.g. STAFF-TEAM")
    _config_arg(attest)
    attest.add_argument("--by", required=True, help="who declares it")
    attest.add_argument("--evidence", required=True, help="what shows it (document, photo...)")
    attest.add_argument("--expires", required=True, help="YYYY-MM-DD")

    lst = rsub.add_parser("list", help="list records")
    _config_arg(lst)
    lst.add_argument("--kind", choices=RECORD_KINDS, default=None)
    lst.add_argument("--json", action="store_true")
    rec.set_defaults(func=cmd_records)
