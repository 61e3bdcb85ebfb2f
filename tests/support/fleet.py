"""Many panels against one hub, and the checks that prove no alarm was lost.

Shared by the reliability suite (and usable by any end-to-end test): a site config with N
panels, the panels themselves, what the store holds, and every delivery the police platform
saw, so that "every ACKed event arrived, seq has no gap, a repeat carries the same event_id,
priority 1 left first" can be asserted in one place.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import yaml

from simulators.panel import PanelSimulator
from simulators.police import Received
from tests.support.sites import site_dict

SITE = "test-mall"


def account(i: int) -> str:
    """Account of panel ``i`` (1-based); panel 1 keeps the default config's ``1234``."""
    return "1234" if i == 1 else f"{0x2000 + i:04X}"


def fleet_dict(
    *, broker_url: str, data_dir: Path, sia_port: int, panels: int, **site: Any
) -> dict[str, Any]:
    """``site_dict`` with ``panels`` panels; panel i has zones 1..8 (zone 15 on panel 1)."""
    data = site_dict(broker_url=broker_url, data_dir=data_dir, sia_port=sia_port, **site)
    first = data["devices"]["alarm_panels"][0]
    for i in range(2, panels + 1):
        data["devices"]["alarm_panels"].append(
            {
                "id": f"panel-{i}",
                "name": f"{i}号报警主机",
                "account": account(i),
                "location": first["location"],
                "zones": [
                    {
                        "zone": z,
                        "id": f"btn-{i}-{z}",
                        "name": f"{i}号主机{z}防区",
                        "location": {"floor": "2F", "zone": f"z{i}", "role": "passage"},
                    }
                    for z in range(1, 9)
                ],
            }
        )
    return data


def write_fleet(path: Path, **kwargs: Any) -> Path:
    path.write_text(yaml.safe_dump(fleet_dict(**kwargs), allow_unicode=True), encoding="utf-8")
    return path


@asynccontextmanager
async def panels(
    port: int, count: int, *, first_key: bytes | None = None, **kwargs: Any
) -> AsyncIterator[list[PanelSimulator]]:
    """``count`` panels with short ACK timeouts (they resend quickly); panel 1 encrypts with
    ``first_key`` when given (``site_dict(panel_key=...)`` configures it on the hub)."""
    kwargs.setdefault("ack_timeout", 1.0)
    kwargs.setdefault("reconnect_max", 0.5)
    async with AsyncExitStack() as stack:
        sims = [
            await stack.enter_async_context(
                PanelSimulator(
                    "127.0.0.1", port, account(i), key=first_key if i == 1 else None, **kwargs
                )
            )
            for i in range(1, count + 1)
        ]
        yield sims


def stored_events(db: Path) -> dict[str, tuple[int, int]]:
    """event_id → (seq, priority) of every event in the store."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT event_id, seq, priority FROM events").fetchall()
        return {eid: (seq, prio) for eid, seq, prio in rows}
    except sqlite3.OperationalError:
        return {}  # not migrated yet
    finally:
        conn.close()


def count_events(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@dataclass
class Delivery:
    index: int
    event_id: str
    seq: int
    priority: int
    kind: str


@dataclass
class DeliveryLog:
    """Every event delivery the police platform saw, in arrival order (``on_message``)."""

    deliveries: list[Delivery] = field(default_factory=list)
    ids_by_seq: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    bodies: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def __call__(self, rec: Received) -> None:
        if rec.kind != "events":
            return
        b = rec.body
        d = Delivery(
            len(self.deliveries), str(b["event_id"]), int(b["seq"]), int(b["priority"]), b["kind"]
        )
        self.deliveries.append(d)
        self.ids_by_seq[d.seq].add(d.event_id)
        # Everything but the hub's own bookkeeping must be identical on a repeat.
        self.bodies[d.event_id].add(repr(sorted((k, repr(v)) for k, v in b.items())))

    @property
    def first_arrival(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.deliveries:
            out.setdefault(d.event_id, d.index)
        return out

    def assert_complete(self, stored: dict[str, tuple[int, int]], acked: int) -> None:
        """Every ACKed event is stored once and arrived; seq gap-free; repeats identical."""
        assert len(stored) >= acked, f"{acked} events ACKed but only {len(stored)} stored"
        arrived = set(self.first_arrival)
        missing = set(stored) - arrived
        assert not missing, f"{len(missing)} stored events never reached the police"
        seqs = sorted(seq for seq, _ in stored.values())
        assert seqs == list(range(1, len(seqs) + 1)), "seq has a gap in the store"
        delivered = sorted(self.ids_by_seq)
        assert delivered == seqs, "the police saw a seq the store does not have, or a gap"
        clashes = {s: ids for s, ids in self.ids_by_seq.items() if len(ids) > 1}
        assert not clashes, f"one seq delivered under several event_ids: {list(clashes)[:3]}"
        changed = [eid for eid, bodies in self.bodies.items() if len(bodies) > 1]
        assert not changed, f"a repeat differed from the first delivery: {changed[:3]}"

    def assert_priority_first(self, queued: set[str]) -> None:
        """Among ``queued`` events (stored while the link was down), every priority-1 event
        arrived before any lower-priority one."""
        first = self.first_arrival
        by_id = {d.event_id: d for d in self.deliveries}
        p1 = [first[e] for e in queued if by_id[e].priority == 1]
        rest = [first[e] for e in queued if by_id[e].priority > 1]
        assert p1 and rest, "the outage queued no mix of priorities to order"
        assert max(p1) < min(rest), (
            f"a lower-priority event overtook a priority-1 one: last P1 arrival {max(p1)}, "
            f"first other arrival {min(rest)}"
        )

    @property
    def duplicates(self) -> int:
        return len(self.deliveries) - len(self.first_arrival)


def stored_between(db: Path, start: Any, end: Any) -> set[str]:
    """event_ids the hub stored between two aware UTC datetimes (received_at)."""
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    lo = start.astimezone(UTC).strftime(fmt)
    hi = end.astimezone(UTC).strftime(fmt)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT event_id FROM events WHERE received_at >= ? AND received_at <= ?", (lo, hi)
        ).fetchall()
    finally:
        conn.close()
    return {r[0] for r in rows}
