"""Compliance with the "平安商场" rules (COMPLIANCE.md): the rule table, its evaluation
over config, device states and stored history, the service that keeps the retained
summary current, records (drills, trainings, hazards, attestations) and reports."""

from hub.compliance.engine import ComplianceResult, ComplianceService, evaluate
from hub.compliance.facts import Facts, LinkFacts
from hub.compliance.load import load_facts
from hub.compliance.outcome import Evidence, Outcome, Text
from hub.compliance.rules import RULES, RULES_BY_ID, Rule, required_guards

__all__ = [
    "RULES",
    "RULES_BY_ID",
    "ComplianceResult",
    "ComplianceService",
    "Evidence",
    "Facts",
    "LinkFacts",
    "Outcome",
    "Rule",
    "Text",
    "evaluate",
    "load_facts",
    "required_guards",
]
