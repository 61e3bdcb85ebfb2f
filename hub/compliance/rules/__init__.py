"""The rule catalogue (COMPLIANCE.md) as one table: each rule with its evaluation.

Every rule reads only :class:`~hub.compliance.facts.Facts` and returns an
:class:`~hub.compliance.outcome.Outcome`. A value the facts do not contain makes the rule
``unknown`` (saying what is missing), never ``pass``. Rules marked ``attestable`` turn an
``unknown`` into ``attested`` when a person has declared the rule met (see the engine);
a measured ``fail`` is never overridden by a declaration.

The rules live by family, each module with its checks and the rows that declare them:
``video``, ``alarms``, ``link`` (police link, broadcast, duty) and ``staff`` (guards, drills,
records). This module is the one registry: :data:`RULES` lists them in catalogue order.
A new rule goes into its family's ``RULES``; a new family is one more line below.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.compliance.rules import alarms, link, staff, video
from hub.compliance.rules.base import ROLE_NAMES, Rule, day, local_date, site_tz, when
from hub.compliance.rules.staff import DRILL_TYPES, required_guards

RULES: tuple[Rule, ...] = (*video.RULES, *alarms.RULES, *link.RULES, *staff.RULES)

RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
ATTESTABLE: tuple[str, ...] = tuple(r.id for r in RULES if r.attestable)


def rule_ids() -> Iterable[str]:
    return RULES_BY_ID.keys()


__all__ = [
    "ATTESTABLE",
    "DRILL_TYPES",
    "ROLE_NAMES",
    "RULES",
    "RULES_BY_ID",
    "Rule",
    "day",
    "local_date",
    "required_guards",
    "rule_ids",
    "site_tz",
    "when",
]
