"""docs/compliance-rules.md is generated from the rule table and must match it."""

from __future__ import annotations

from hub.compliance.docs import DOC_PATH, render
from hub.compliance.rules import RULES


def test_committed_catalogue_matches_the_rule_table() -> None:
    committed = DOC_PATH.read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/compliance-rules.md is out of date: run "
        "`python -m hub.compliance.docs --write` and commit the result"
    )


def test_catalogue_lists_every_rule_with_its_source() -> None:
    text = render()
    for rule in RULES:
        assert f"| {rule.id} | {rule.title.zh} |" in text
        assert f"### {rule.id} — " in text
        assert rule.source in text
    # Clause numbers from secondary sources keep their mark.
    assert "GB 50395 5.0.10†" in text and "GB 50394 5.2.4†" in text
    # The catalogue follows COMPLIANCE.md's order.
    ids = [r.id for r in RULES]
    assert ids[0] == "VID-COVERAGE" and ids[-1] == "SYS-EMERGENCY" and len(ids) == 25
