"""What a compliance rule concludes: a status, evidence and a bilingual explanation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from hub.store.writer import iso

Status = Literal["pass", "fail", "unknown", "attested"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "unknown", "attested")
Overall = Literal["compliant", "non_compliant", "unknown"]


@dataclass(frozen=True, slots=True)
class Text:
    """One short sentence in Chinese and in English (Chinese first, as in the reports)."""

    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh

    def to_json(self) -> dict[str, str]:
        return {"zh": self.zh, "en": self.en}

    @staticmethod
    def join(parts: list[Text]) -> Text:
        return Text("；".join(p.zh for p in parts), "; ".join(p.en for p in parts))


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact a rule looked at: whose (device, role, record), what, the value and the limit.

    ``ok`` is True when the fact satisfies the rule, False when it breaks it and None when
    the value is missing. ``since`` is when the fact began, where the store knows it.
    """

    subject: str
    check: str
    value: Any = None
    limit: Any = None
    ok: bool | None = None
    since: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subject": self.subject, "check": self.check, "value": self.value}
        if self.limit is not None:
            out["limit"] = self.limit
        out["ok"] = self.ok
        if self.since is not None:
            out["since"] = iso(self.since)
        return out

    @staticmethod
    def from_json(d: dict[str, Any]) -> Evidence:
        since = d.get("since")
        return Evidence(
            subject=str(d.get("subject", "")),
            check=str(d.get("check", "")),
            value=d.get("value"),
            limit=d.get("limit"),
            ok=d.get("ok"),
            since=parse_time(since) if isinstance(since, str) else None,
        )


@dataclass(frozen=True, slots=True)
class Attestation:
    """A person's declaration that a rule is met, valid until it expires."""

    record_id: int
    by: str
    at: datetime
    evidence: str
    expires_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "by": self.by,
            "at": iso(self.at),
            "evidence": self.evidence,
            "expires_at": iso(self.expires_at) if self.expires_at else None,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """A rule's verdict. ``since`` is the rule's own estimate of when this status began."""

    status: Status
    explanation: Text
    evidence: tuple[Evidence, ...] = ()
    since: datetime | None = None
    attestation: Attestation | None = None


@dataclass(frozen=True, slots=True)
class RuleResult:
    """An outcome placed in time: ``since`` is when the rule entered its current status."""

    rule_id: str
    outcome: Outcome
    since: datetime | None

    @property
    def status(self) -> Status:
        return self.outcome.status


@dataclass(slots=True)
class Counts:
    passed: int = 0
    failed: int = 0
    unknown: int = 0
    attested: int = 0

    def add(self, status: Status) -> None:
        if status == "pass":
            self.passed += 1
        elif status == "fail":
            self.failed += 1
        elif status == "unknown":
            self.unknown += 1
        else:
            self.attested += 1

    def to_json(self) -> dict[str, int]:
        return {
            "pass": self.passed,
            "fail": self.failed,
            "unknown": self.unknown,
            "attested": self.attested,
        }


@dataclass(slots=True)
class Verdicts:
    """Collects per-item evidence and folds it into one outcome (fail > unknown > pass)."""

    evidence: list[Evidence] = field(default_factory=list)
    failures: list[Text] = field(default_factory=list)
    missing: list[Text] = field(default_factory=list)
    notes: list[Text] = field(default_factory=list)
    fail_since: list[datetime] = field(default_factory=list)

    def fail(self, why: Text, since: datetime | None = None) -> None:
        self.failures.append(why)
        if since is not None:
            self.fail_since.append(since)

    def unknown(self, what: Text) -> None:
        self.missing.append(what)

    def outcome(self, passed: Text) -> Outcome:
        ev = tuple(self.evidence)
        if self.failures:
            since = min(self.fail_since) if self.fail_since else None
            return Outcome("fail", _cap(self.failures), ev, since)
        if self.missing:
            missing = _cap(self.missing)
            return Outcome(
                "unknown",
                Text(f"无法判断，缺少：{missing.zh}", f"Cannot tell; missing: {missing.en}"),
                ev,
            )
        text = Text.join([passed, *self.notes]) if self.notes else passed
        return Outcome("pass", text, ev)


def _cap(parts: list[Text], limit: int = 5) -> Text:
    """Join at most ``limit`` reasons; say how many more there are."""
    shown = Text.join(parts[:limit])
    extra = len(parts) - limit
    if extra <= 0:
        return shown
    return Text(f"{shown.zh}；另有 {extra} 项", f"{shown.en}; and {extra} more")


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 time as written by :func:`hub.store.writer.iso`."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def worst(statuses: list[Status]) -> Overall:
    """The site's overall status: any fail → non_compliant, else any unknown → unknown."""
    if "fail" in statuses:
        return "non_compliant"
    if "unknown" in statuses:
        return "unknown"
    return "compliant"
