from __future__ import annotations

import uuid

from hub.events import KINDS, kind_info, uuid7


def test_uuid7_is_version_7_and_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(20000)]
    assert all(i.version == 7 for i in ids)
    assert all(i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids, key=lambda u: u.int)
    assert len(set(ids)) == len(ids)


def test_priorities_follow_the_police_contract() -> None:
    for k in ("alarm.panic", "alarm.duress", "alarm.holdup", "alarm.fire"):
        assert KINDS[k].priority == 1
    for k in ("alarm.intrusion", "alarm.tamper"):
        assert KINDS[k].priority == 2
    for k in ("fault.device_offline", "fault.video_loss", "fault.communication"):
        assert KINDS[k].priority == 3
    for k in ("fault.ac_loss", "fault.battery", "info.test", "info.periodic_test"):
        assert KINDS[k].priority == 4


def test_restore_kinds_are_info_priority_4() -> None:
    k = kind_info("alarm.panic.restore")
    assert (k.category, k.priority) == ("info", 4)
    assert k.zh.endswith("恢复")
    assert kind_info("fault.ac_loss.restore").category == "info"


def test_unknown_kind_is_forwarded_as_alarm_unknown() -> None:
    assert kind_info("alarm.made_up").name == "alarm.unknown"
    assert kind_info("nonsense").name == "alarm.unknown"
    assert kind_info("alarm.made_up.restore").name == "alarm.unknown"


def test_every_kind_has_bilingual_text_and_a_valid_category() -> None:
    for k in KINDS.values():
        assert k.zh and k.en
        assert k.name.split(".")[0] == k.category
        assert 1 <= k.priority <= 4
