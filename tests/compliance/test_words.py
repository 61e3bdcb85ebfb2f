"""Every check a compliance rule can put in its evidence has a name in Chinese and English,
so the printable report never shows a bare identifier such as ``state`` or ``hash_chain``."""

from __future__ import annotations

import ast
from pathlib import Path

from adapters.onvif.video import CHECKS as VIDEO_CHECKS
from hub.compliance.records import RECORD_KINDS
from hub.compliance.words import CHECK_NAMES, VALUE_NAMES, check_name, value_words

RULES = Path(__file__).resolve().parents[2] / "hub" / "compliance" / "rules"


def _strings(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body) | _strings(node.orelse)
    return set()


def literal_checks() -> set[str]:
    """The check names the rules write as literals: ``Evidence(subject, "check", …)`` and
    ``missing_detail(v, device, "check", …)``."""
    found: set[str] = set()
    for path in RULES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id == "Evidence" and len(node.args) >= 2:
                found |= _strings(node.args[1])
            elif node.func.id == "missing_detail" and len(node.args) >= 3:
                found |= _strings(node.args[2])
    return found


def test_every_check_a_rule_can_report_has_a_name() -> None:
    literal = literal_checks()
    assert {"state", "hash_chain", "availability_24h", "open", "overdue"} <= literal
    # Names that come from data: a video finding's check, a record's kind.
    every = literal | set(VIDEO_CHECKS) | set(RECORD_KINDS)
    assert sorted(every - set(CHECK_NAMES)) == []
    for name in CHECK_NAMES.values():
        assert name.zh and name.en and name.zh != name.en


def test_values_read_as_words_and_the_rest_stays_as_it_is() -> None:
    assert value_words("offline", "zh-CN") == "离线"
    assert value_words("offline", "en") == "offline"
    assert value_words(True, "zh-CN") == "是" and value_words(False, "en") == "no"
    assert value_words(12.5, "zh-CN") == 12.5
    assert value_words("2026-12-01", "zh-CN") == "2026-12-01"
    assert check_name("hash_chain", "zh-CN") == "哈希链"
    assert check_name("a_new_check", "zh-CN") == "a_new_check"
    assert all(v.zh != v.en for v in VALUE_NAMES.values())
