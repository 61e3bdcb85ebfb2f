"""Evaluating the rule table, keeping when each rule began its status, and the service
that re-evaluates, stores snapshots and publishes the retained summary."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import SiteConfig
from hub.store.models import ComplianceSnapshot
from hub.store.writer import EnqueueMessage, StoreWriter, WriteContext, iso, now_utc
from hub.tasks import stop_task

from .facts import Facts, LinkFacts, LinkStatus, PreviousResult, RecordFacts
from .load import AuditChain, load_facts, previous_from_body, snapshot_facts
from .outcome import (
    Attestation,
    Counts,
    Evidence,
    Outcome,
    Overall,
    RuleResult,
    Text,
    worst,
)
from .rules import RULES, RULES_BY_ID, Rule, day, when

log = logging.getLogger(__name__)

SUMMARY_SCHEMA = "mallhub/compliance/1"
SNAPSHOT_SCHEMA = "mallhub/compliance-snapshot/1"
SUMMARY_PRIORITY = 5
#: A snapshot is stored at least this often even when nothing changed.
SNAPSHOT_EVERY = timedelta(hours=1)
#: At most this many evidence items per rule travel in the summary message.
SUMMARY_EVIDENCE = 20


@dataclass(frozen=True, slots=True)
class ComplianceResult:
    """The whole site's status at ``at``."""

    site_id: str
    at: datetime
    overall: Overall
    counts: Counts
    rules: tuple[RuleResult, ...]
    facts: Facts = field(repr=False, compare=False)

    def rule(self, rule_id: str) -> RuleResult:
        for r in self.rules:
            if r.rule_id == rule_id:
                return r
        raise KeyError(rule_id)

    def signature(self) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        """What counts as a change of outcome: each status and the subjects failing it."""
        return tuple(
            (
                r.rule_id,
                r.status,
                tuple(sorted({e.subject for e in r.outcome.evidence if e.ok is False})),
            )
            for r in self.rules
        )

    def summary(self) -> dict[str, Any]:
        """The retained ``<p>/compliance`` message (docs/schemas/compliance.schema.json)."""
        failing = []
        for r in self.rules:
            if r.status not in ("fail", "unknown"):
                continue
            rule = RULES_BY_ID[r.rule_id]
            evidence = [e.to_json() for e in r.outcome.evidence if e.ok is not True]
            failing.append(
                {
                    "rule": r.rule_id,
                    "status": r.status,
                    "title": rule.title.to_json(),
                    "since": iso(r.since) if r.since else None,
                    "explanation": r.outcome.explanation.to_json(),
                    "evidence": evidence[:SUMMARY_EVIDENCE],
                }
            )
        return {
            "schema": SUMMARY_SCHEMA,
            "site_id": self.site_id,
            "overall": self.overall,
            "evaluated_at": iso(self.at),
            "counts": self.counts.to_json(),
            "failing": failing,
        }

    def rules_json(self) -> list[dict[str, Any]]:
        out = []
        for r in self.rules:
            o = r.outcome
            item: dict[str, Any] = {
                "rule": r.rule_id,
                "status": r.status,
                "since": iso(r.since) if r.since else None,
                "explanation": o.explanation.to_json(),
                "evidence": [e.to_json() for e in o.evidence],
            }
            if o.attestation is not None:
                item["attestation"] = o.attestation.to_json()
            out.append(item)
        return out

    def snapshot_body(self) -> dict[str, Any]:
        """What ``compliance_snapshots.body`` keeps: the summary, every rule, and the facts
        that have no history of their own (for reports on past dates)."""
        return {
            "schema": SNAPSHOT_SCHEMA,
            "summary": self.summary(),
            "rules": self.rules_json(),
            "facts": snapshot_facts(self.facts),
        }


# --- evaluation ----------------------------------------------------------------------------


def _attestation(facts: Facts, rule_id: str) -> tuple[RecordFacts | None, RecordFacts | None]:
    """The valid attestation for a rule (latest first), and the latest expired one."""
    valid: RecordFacts | None = None
    expired: RecordFacts | None = None
    for r in facts.records:
        if r.kind != "attestation" or r.rule_id != rule_id or r.at > facts.at:
            continue
        if r.expires_at is not None and r.expires_at <= facts.at:
            if expired is None or r.at > expired.at:
                expired = r
        elif valid is None or r.at > valid.at:
            valid = r
    return valid, expired


def _attest(facts: Facts, rule: Rule, outcome: Outcome) -> Outcome:
    """An ``unknown`` of an attestable rule becomes ``attested`` with a valid declaration."""
    if not rule.attestable or outcome.status != "unknown":
        return outcome
    valid, expired = _attestation(facts, rule.id)
    cfg = facts.config
    if valid is None:
        if expired is None:
            return outcome
        note = Text(
            f"{expired.created_by} 于 {day(cfg, expired.at)} 的声明已于 "
            f"{day(cfg, expired.expires_at or expired.at)} 过期",
            f"the declaration by {expired.created_by} on {day(cfg, expired.at)} expired on "
            f"{day(cfg, expired.expires_at or expired.at)}",
        )
        return Outcome(
            "unknown",
            Text.join([outcome.explanation, note]),
            (
                *outcome.evidence,
                Evidence(
                    f"record:{expired.id}",
                    "attestation",
                    expired.created_by,
                    None,
                    False,
                    expired.expires_at,
                ),
            ),
        )
    evidence_text = str(valid.detail.get("evidence", ""))
    until_zh = f"，有效期至 {day(cfg, valid.expires_at)}" if valid.expires_at else ""
    until_en = f", valid until {day(cfg, valid.expires_at)}" if valid.expires_at else ""
    return Outcome(
        "attested",
        Text(
            f"由 {valid.created_by} 于 {when(cfg, valid.at)} 声明：{evidence_text}{until_zh}",
            f"declared by {valid.created_by} on {when(cfg, valid.at)}: {evidence_text}{until_en}",
        ),
        (
            *(e for e in outcome.evidence if e.ok is not None),
            Evidence(f"record:{valid.id}", "attestation", valid.created_by, None, True, valid.at),
        ),
        valid.at,
        Attestation(valid.id, valid.created_by, valid.at, evidence_text, valid.expires_at),
    )


def _since(
    at: datetime, status: str, own: datetime | None, previous: PreviousResult | None, rule_id: str
) -> datetime:
    """When the rule entered ``status``: kept from the previous result while unchanged."""
    if own is not None and own > at:
        own = at
    if previous is not None:
        prev_status, prev_since = previous.rules.get(rule_id, (None, None))
        if prev_status == status and prev_since is not None:
            return min(prev_since, own) if own is not None else prev_since
        # The status changed since the previous evaluation: the facts' own time (a device's
        # state since) is best, even if recorded late; else the change is first seen now.
        return own if own is not None else at
    return own if own is not None else at


def _ms(t: datetime) -> datetime:
    """Milliseconds, as every message and snapshot carries times: since survives a restart."""
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def evaluate(facts: Facts, at: datetime | None = None) -> ComplianceResult:
    """Evaluate every rule over ``facts`` (as of ``at``, default the facts' own time)."""
    when_at = at or facts.at
    counts = Counts()
    results: list[RuleResult] = []
    for rule in RULES:
        try:
            outcome = rule.check(facts)
        except Exception as exc:  # one broken rule must not hide the others
            log.exception("compliance rule %s failed to evaluate", rule.id)
            outcome = Outcome(
                "unknown",
                Text(
                    f"规则计算出错：{type(exc).__name__}", f"evaluation error: {type(exc).__name__}"
                ),
            )
        outcome = _attest(facts, rule, outcome)
        counts.add(outcome.status)
        since = _ms(_since(when_at, outcome.status, outcome.since, facts.previous, rule.id))
        results.append(RuleResult(rule.id, outcome, since))
    return ComplianceResult(
        site_id=facts.config.site.id,
        at=when_at,
        overall=worst([r.status for r in results]),
        counts=counts,
        rules=tuple(results),
        facts=facts,
    )


def previous_of(result: ComplianceResult) -> PreviousResult:
    return PreviousResult(result.at, {r.rule_id: (r.status, r.since) for r in result.rules})


async def latest_snapshot(engine: AsyncEngine) -> tuple[datetime, dict[str, Any]] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(ComplianceSnapshot.at, ComplianceSnapshot.body)
                .order_by(ComplianceSnapshot.at.desc(), ComplianceSnapshot.id.desc())
                .limit(1)
            )
        ).first()
    if row is None:
        return None
    return row.at, dict(row.body)


# --- storing ------------------------------------------------------------------------------


@dataclass(slots=True)
class StoreSnapshot:
    """Store a snapshot and queue the retained summary, in one transaction."""

    result: ComplianceResult
    topic: str

    async def apply(self, ctx: WriteContext) -> int:
        row = ComplianceSnapshot(
            at=self.result.at, overall=self.result.overall, body=self.result.snapshot_body()
        )
        ctx.session.add(row)
        await EnqueueMessage(
            kind="compliance",
            topic=self.topic,
            payload=self.result.summary(),
            priority=SUMMARY_PRIORITY,
            retain=True,
            coalesce_key="compliance",
        ).apply(ctx)
        await ctx.session.flush()
        return row.id


LinkProvider = Callable[[], LinkStatus | Awaitable[LinkStatus | None] | None]
ResultListener = Callable[[ComplianceResult], None]


class ComplianceService:
    """Re-evaluates compliance every ``compliance.evaluate_every_s`` and when poked.

    A snapshot is stored (and the retained summary queued for the police) whenever the
    outcome changes and at least hourly. ``link_state_provider`` returns the police link's
    state (anything with the :class:`~hub.compliance.facts.LinkStatus` attributes), or None.
    """

    def __init__(
        self,
        config: SiteConfig,
        engine: AsyncEngine,
        writer: StoreWriter,
        link_state_provider: LinkProvider | None = None,
        *,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.config = config
        self.engine = engine
        self.writer = writer
        self.link_state_provider = link_state_provider
        self.clock = clock
        self.topic = f"{config.topic_prefix}/compliance"
        self.latest: ComplianceResult | None = None
        self.evaluations = 0
        self.snapshots = 0
        self.errors = 0
        self._listeners: list[ResultListener] = []
        self._poked = asyncio.Event()
        self._stored_signature: tuple[Any, ...] | None = None
        self._stored_at: datetime | None = None
        self._previous: PreviousResult | None = None
        self._audit = AuditChain()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.evaluated = asyncio.Event()

    def add_listener(self, listener: ResultListener) -> None:
        """Called with every new result (e.g. to put it on the event bus or into metrics)."""
        self._listeners.append(listener)

    def poke(self) -> None:
        """Re-evaluate soon (a device changed state, a record was added...)."""
        self._poked.set()

    async def __aenter__(self) -> Self:
        last = await latest_snapshot(self.engine)
        if last is not None:
            at, body = last
            self._stored_at = at
            self._previous = previous_from_body(at, body)
        self._task = asyncio.create_task(self._run(), name="compliance")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        every = self.config.compliance.evaluate_every_s
        while True:
            try:
                await self.evaluate_now()
            except asyncio.CancelledError:
                raise
            except Exception:  # a supervisor: log and try again next round
                self.errors += 1
                log.exception("compliance evaluation failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._poked.wait()
            self._poked.clear()

    async def link_facts(self) -> LinkFacts | None:
        """The police link's facts now (None without a provider)."""
        if self.link_state_provider is None:
            return None
        status = self.link_state_provider()
        if inspect.isawaitable(status):
            status = await status
        if status is None:
            return None
        return LinkFacts.of(status, self.clock())

    async def evaluate_now(self, *, force_store: bool = False) -> ComplianceResult:
        """Evaluate now; store a snapshot and queue the summary if the outcome changed."""
        async with self._lock:
            at = self.clock()
            link = await self.link_facts()
            audit = await self._audit.advance(self.engine, at)
            facts = await load_facts(
                self.engine,
                self.config,
                at,
                link=link,
                audit=audit,
                previous=self._previous,
                live=True,
            )
            result = evaluate(facts, facts.at)
            self.evaluations += 1
            signature = result.signature()
            due = self._stored_at is None or result.at - self._stored_at >= SNAPSHOT_EVERY
            if force_store or due or signature != self._stored_signature:
                await self.writer.submit(StoreSnapshot(result, self.topic))
                self._stored_signature = signature
                self._stored_at = result.at
                self.snapshots += 1
            self._previous = previous_of(result)
            self.latest = result
        for listener in self._listeners:
            try:
                listener(result)
            except Exception:
                log.exception("compliance listener failed")
        self.evaluated.set()
        return result

    async def republish(self, _command: dict[str, Any] | None = None) -> dict[str, Any]:
        """Recompute and republish (the police ``compliance`` command); returns the summary."""
        result = await self.evaluate_now(force_store=True)
        return result.summary()
