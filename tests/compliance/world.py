"""A mall that meets every rule, built in a real store; tests break one thing at a time.

The store is written the way the other parts of the hub write it: health writes
``device_state`` and ``device_state_changes``, ingest writes ``events``, the linkage and the
console write ``event_updates``, records go through the writer.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.compliance.engine import ComplianceResult, evaluate
from hub.compliance.facts import Facts, LinkFacts
from hub.compliance.load import load_facts
from hub.compliance.records import AddRecord
from hub.config import SiteConfig, parse_config
from hub.events import kind_info, uuid7
from hub.store import StoreWriter, create_engine, upgrade
from hub.store.models import DeviceState, DeviceStateChange, Event, EventUpdate
from hub.store.writer import iso
from tests.support.sites import site_dict

CAMERAS = {
    "cam-gate-1": "gate",
    "cam-perim-1": "perimeter",
    "cam-entr-1": "entrance",
    "cam-park-1": "parking",
    "cam-fin-1": "finance_room",
}
BUTTONS = {
    "btn-gate-1": (15, "gate"),
    "btn-duty-1": (16, "duty_room"),
    "btn-mon-1": (17, "monitoring_room"),
    "btn-fin-1": (18, "finance_room"),
}
GOOD_CAMERA: dict[str, Any] = {
    "clock_offset_s": 0.4,
    "resolution": [1920, 1080],
    "fps_limit": 25.0,
    "fps_measured": 24.8,
    "findings": [
        {
            "check": "covered",
            "ok": True,
            "score": 0.01,
            "threshold": 0.6,
            "message_zh": "画面遮挡",
            "message_en": "View covered or blocked",
        },
        {
            "check": "blur",
            "ok": True,
            "score": 120.0,
            "threshold": 40.0,
            "message_zh": "画面模糊",
            "message_en": "Picture blurred",
        },
    ],
}
COVERED = {
    "check": "covered",
    "ok": False,
    "score": 0.92,
    "threshold": 0.6,
    "message_zh": "画面遮挡",
    "message_en": "View covered or blocked",
}
ATTESTED = ("STAFF-TEAM", "PHYS-BARRIERS", "SYS-EMERGENCY", "VID-RETENTION")


def full_site_dict(tmp_path: Path, database_url: str) -> dict[str, Any]:
    d = site_dict(broker_url="mqtt://127.0.0.1:1", data_dir=tmp_path, database_url=database_url)
    panel = d["devices"]["alarm_panels"][0]
    panel["supervision_interval_s"] = 60
    panel["zones"] = [
        {
            "zone": zone,
            "id": dev,
            "name": f"{role} 一键报警",
            "location": {"floor": "1F", "zone": f"z-{role}", "role": role},
        }
        for dev, (zone, role) in BUTTONS.items()
    ]
    d["devices"]["cameras"] = [
        {
            "id": cam,
            "name": f"{role} 摄像机",
            "host": "127.0.0.1",
            "port": 1,
            "location": {"floor": "1F", "zone": f"z-{role}", "role": role},
        }
        for cam, role in CAMERAS.items()
    ]
    d["devices"]["broadcast"] = [
        {
            "id": "bc-1",
            "name": "应急广播",
            "url": "http://127.0.0.1:1",
            "location": {"floor": "1F", "zone": "z-monitoring_room", "role": "monitoring_room"},
            "zones": [{"id": "z1", "name": "一层"}, {"id": "z2", "name": "二层"}],
        }
    ]
    d["linkage"] = [
        {
            "name": "evacuate",
            "match": {"kinds": ["alarm.panic", "alarm.holdup"]},
            "actions": [
                {"type": "snapshot"},
                {"type": "broadcast", "controller": "bc-1"},
            ],
        }
    ]
    return d


def good_link(now: datetime) -> LinkFacts:
    return LinkFacts(True, now - timedelta(seconds=20), 0, None, "optional", now)


@dataclass
class World:
    config: SiteConfig
    engine: AsyncEngine
    writer: StoreWriter
    base: datetime
    link: LinkFacts | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # --- writing like the rest of the hub --------------------------------------------------

    async def state(
        self,
        device_id: str,
        state: str,
        *,
        at: datetime | None = None,
        detail: dict[str, Any] | None = None,
        last_seen: datetime | None = None,
        history: bool = True,
    ) -> None:
        """Health's view of a device: current row (replaced) and a change row."""
        at = at or self.base
        async with self.writer.sessions() as s, s.begin():
            row = await s.get(DeviceState, device_id)
            if row is None:
                s.add(
                    DeviceState(
                        device_id=device_id,
                        state=state,
                        since=at,
                        reason="",
                        last_seen=last_seen or at,
                        fail_count=0,
                        ok_count=0,
                        detail=detail or {},
                    )
                )
            else:
                if row.state != state:
                    row.since = at
                row.state = state
                row.last_seen = last_seen or row.last_seen
                if detail is not None:
                    row.detail = detail
            if history:
                s.add(DeviceStateChange(device_id=device_id, at=at, state=state, reason=""))

    async def detail(self, device_id: str, **changes: Any) -> None:
        """Change probe details (None removes a key); no history, as for health."""
        async with self.writer.sessions() as s, s.begin():
            row = await s.get(DeviceState, device_id)
            assert row is not None
            detail = dict(row.detail)
            for k, v in changes.items():
                if v is None:
                    detail.pop(k, None)
                else:
                    detail[k] = v
            row.detail = detail

    async def forget(self, device_id: str) -> None:
        """The store knows nothing about this device."""
        async with self.writer.sessions() as s, s.begin():
            await s.execute(delete(DeviceState).where(DeviceState.device_id == device_id))
            await s.execute(
                delete(DeviceStateChange).where(DeviceStateChange.device_id == device_id)
            )

    async def event(
        self,
        kind: str,
        device_id: str,
        at: datetime,
        *,
        publish_after_s: float | None = 0.2,
        ack_after_s: float | None = None,
        ack_via: str = "console",
        source: dict[str, Any] | None = None,
        linkage: list[dict[str, Any]] | None = None,
        test_mode: bool = False,
    ) -> str:
        k = kind_info(kind)
        event_id = str(uuid7())
        async with self.writer.sessions() as s, s.begin():
            seq = self.extra.setdefault("seq", 0) + 1
            self.extra["seq"] = seq
            state = "new"
            state_at = None
            if ack_after_s is not None:
                state, state_at = "acknowledged", at + timedelta(seconds=ack_after_s)
            s.add(
                Event(
                    event_id=event_id,
                    seq=seq,
                    kind=k.name,
                    category=k.category,
                    priority=k.priority,
                    device_id=device_id,
                    occurred_at=at,
                    received_at=at,
                    source=source or {},
                    detail={},
                    device_state=None,
                    dedupe_key=None,
                    test_mode=test_mode,
                    state=state,
                    state_at=state_at,
                    state_via=ack_via if state_at else None,
                    update_seq=0,
                    first_published_at=(
                        at + timedelta(seconds=publish_after_s)
                        if publish_after_s is not None
                        else None
                    ),
                    message={},
                )
            )
            n = 0
            if linkage is not None:
                n += 1
                s.add(
                    EventUpdate(
                        event_id=event_id,
                        update_seq=n,
                        created_at=at + timedelta(seconds=5),
                        message={"event_id": event_id, "linkage": linkage},
                    )
                )
            if state_at is not None:
                n += 1
                s.add(
                    EventUpdate(
                        event_id=event_id,
                        update_seq=n,
                        created_at=state_at,
                        message={
                            "event_id": event_id,
                            "state": {
                                "state": "acknowledged",
                                "by": "duty",
                                "via": ack_via,
                                "at": iso(state_at),
                            },
                        },
                    )
                )
        return event_id

    async def delete_events(self, device_id: str | None = None) -> None:
        async with self.writer.sessions() as s, s.begin():
            q = delete(Event)
            if device_id is not None:
                q = q.where(Event.device_id == device_id)
            await s.execute(q)
            if device_id is None:
                await s.execute(delete(EventUpdate))

    async def record(self, op: AddRecord) -> int:
        return int(await self.writer.submit(op))

    async def sql(self, stmt: Any) -> None:
        async with self.writer.sessions() as s, s.begin():
            await s.execute(stmt)

    # --- evaluating -------------------------------------------------------------------------

    async def facts(self, at: datetime | None = None, **kw: Any) -> Facts:
        return await load_facts(self.engine, self.config, at, link=self.link, **kw)

    async def evaluate(self, at: datetime | None = None, **kw: Any) -> ComplianceResult:
        facts = await self.facts(at, **kw)
        return evaluate(facts, facts.at)


def record(kind: str, at: datetime, title: str, **kw: Any) -> AddRecord:
    return AddRecord(kind, at, title, "tester", **kw)


async def populate(w: World) -> None:
    """Everything a compliant mall has, relative to ``w.base``."""
    base = w.base
    long_ago = base - timedelta(days=2)
    for cam in CAMERAS:
        await w.state(cam, "online", at=long_ago, detail=dict(copy.deepcopy(GOOD_CAMERA)))
    await w.state("panel-1", "online", at=long_ago, detail={"supervision": "ok"}, last_seen=base)
    await w.state("bc-1", "online", at=long_ago, detail={"broadcast_ok": True})
    for btn in BUTTONS:
        await w.event("info.test", btn, base - timedelta(days=5), test_mode=True)
    for zone in ("z1", "z2"):
        await w.event("info.test", "bc-1", base - timedelta(days=7), source={"zone_test": zone})
    await w.event(
        "alarm.panic",
        "btn-gate-1",
        base - timedelta(days=3),
        publish_after_s=0.3,
        ack_after_s=20,
        linkage=[
            {
                "type": "snapshot",
                "target": "cam-gate-1",
                "outcome": "ok",
                "at": iso(base - timedelta(days=3)),
                "elapsed_ms": 1200,
            },
            {
                "type": "broadcast",
                "target": "bc-1",
                "outcome": "ok",
                "at": iso(base - timedelta(days=3)),
                "elapsed_ms": 900,
            },
        ],
    )
    await w.record(
        record("drill", base - timedelta(days=20), "火灾疏散演练", detail={"type": "fire"})
    )
    await w.record(record("training", base - timedelta(days=10), "识别暴恐人员特征培训"))
    await w.record(record("review", base - timedelta(days=5), "月度隐患排查"))
    for rule in ATTESTED:
        await w.record(
            record(
                "attestation",
                base - timedelta(days=1),
                f"{rule}: 见附件",
                rule_id=rule,
                expires_at=base + timedelta(days=365),
                detail={"evidence": "检查记录与照片"},
            )
        )


@asynccontextmanager
async def world(
    tmp_path: Path,
    database_url: str,
    *,
    edit: Callable[[dict[str, Any]], None] | None = None,
    base: datetime | None = None,
    populated: bool = True,
) -> AsyncIterator[World]:
    d = full_site_dict(tmp_path, database_url)
    if edit is not None:
        edit(d)
    config = parse_config(d, env={})
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(d, allow_unicode=True), encoding="utf-8")
    engine = create_engine(database_url)
    await upgrade(engine)
    try:
        async with StoreWriter(engine) as writer:
            now = base or datetime.now(UTC)
            w = World(config, engine, writer, now, good_link(now), path)
            if populated:
                await populate(w)
            yield w
    finally:
        await engine.dispose()


__all__ = ["COVERED", "GOOD_CAMERA", "World", "populate", "record", "world"]
