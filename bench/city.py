"""City scale: the patrol service on a 3-node NATS cluster with many emulated malls.

Long because it is one benchmark run in phases that share one cluster, one store and one
set of emulated malls; split, each phase would need that whole set-up passed around.

Phases, all in one run on one machine, against a raw nats-py baseline on the same cluster:

1. the city: every mall's retained status and compliance and D devices' availability,
   published over MQTT to the cluster; the service rebuilds its view from them;
2. an alarm burst at R alarms/s across the malls (JetStream publishes with acks, as a hub's
   QoS 1 PUBACK): publish → stored in PostgreSQL → shown on an open overview (SSE), p50/p99;
3. sustained events/s with 1, 2 and 3 worker processes (stream preloaded, the store's
   commit times give the rate);
4. a node killed and restarted mid-burst: every alarm stored once, duplicates counted;
5. the baseline: raw nats-py publish → pull-consume → ack on its own stream, same cluster.

The service runs as its own processes (``mallhub patrol run`` / ``worker``), as deployed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import asyncpg
import nats
import yaml
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig
from sqlalchemy.engine import make_url

from bench.common import machine, percentile, print_machine, table, verdict
from hub.broker import free_port
from patrol.auth import add_user
from patrol.models import open_store
from patrol.natsnode import NatsCluster
from simulators.city import EmulatedHub, MallSpec, city_specs

PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
QUIET = logging.getLogger("bench.city.mqtt")
QUIET.setLevel(logging.ERROR)
logging.getLogger("nats").setLevel(logging.CRITICAL)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--malls", type=int, default=1000)
    p.add_argument("--devices", type=int, default=300, help="devices per mall (retained)")
    p.add_argument("--rate", type=float, default=1000, help="alarms/s in the burst")
    p.add_argument("--burst-s", type=float, default=10, help="length of the burst")
    p.add_argument("--events", type=int, default=20000, help="events per throughput run")
    p.add_argument("--workers", default="1,2,3", help="worker processes to compare")
    p.add_argument(
        "--database-url", default=os.environ.get("MALLHUB_TEST_DATABASE_URL", PG_DEFAULT)
    )


# --- helpers ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    url = make_url(admin_url)
    name = f"patrol_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password,
            database=url.database or "postgres",
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_config(
    path: Path, cluster: NatsCluster, db: str, specs: list[MallSpec], **kw: Any
) -> None:
    data = {
        "nats": {"servers": cluster.urls, "replicas": 3, **kw.pop("nats", {})},
        "database_url": db,
        "http": {"host": "127.0.0.1", "port": kw.pop("port", 0)},
        "batch": 500,
        "malls": [{"site_id": s.site_id, "name": s.name, "district": s.district} for s in specs],
        **kw,
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


class Procs:
    """Patrol processes, always stopped."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.work / f"patrol-{len(self.procs)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "patrol", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


async def wait_for(pred: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.2)


async def scalar(db: str, sql: str) -> Any:
    url = make_url(db)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def fetch(db: str, sql: str) -> list[Any]:
    url = make_url(db)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def publish_paced(
    nc: NatsClient, items: list[tuple[str, bytes]], rate: float, sent: dict[str, float] | None
) -> tuple[int, int]:
    """JetStream publishes at ``rate``/s, each awaited (a PUBACK), failures retried with the
    same payload (as a hub republishes). Returns (published, retries)."""
    js = nc.jetstream()
    retries = 0
    start = time.monotonic()
    sem = asyncio.Semaphore(500)

    async def one(i: int, subject: str, payload: bytes) -> None:
        nonlocal retries
        async with sem:
            key = json.loads(payload)["event_id"] if sent is not None else ""
            if sent is not None:
                sent[key] = time.time()
            while True:
                try:
                    await js.publish(subject, payload, timeout=5)
                    return
                except Exception:
                    retries += 1
                    await asyncio.sleep(0.2)

    tasks = []
    for i, (subject, payload) in enumerate(items):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, subject, payload)))
    await asyncio.gather(*tasks)
    return len(items), retries


def alarms(hubs: list[EmulatedHub], n: int) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(n):
        h = random.choice(hubs)
        body = h.event("alarm.panic", 1, "一键报警", "Panic alarm", "btn-000")
        out.append(
            (
                f"mallhub.v1.{h.spec.site_id}.events.alarm",
                json.dumps(body, ensure_ascii=False).encode(),
            )
        )
    return out


# --- phases ------------------------------------------------------------------------------------


async def setup_city(cluster: NatsCluster, hubs: list[EmulatedHub], devices: int) -> dict[str, Any]:
    """Retained status, compliance and availability of every mall over one MQTT client."""
    node = cluster.nodes[0]
    t0 = time.monotonic()
    n = 0
    async with aiomqtt.Client(
        "127.0.0.1",
        node.mqtt_port,
        identifier="bench-city",
        protocol=aiomqtt.ProtocolVersion.V311,
        max_inflight_messages=500,
        logger=QUIET,
        timeout=60,
    ) as client:
        batch = []
        for h in hubs:
            p = h.prefix
            batch.append((f"{p}/status", h.status("online")))
            batch.append((f"{p}/compliance", h.compliance()))
            for d in range(devices):
                dev = h.device_id(d)
                batch.append(
                    (
                        f"{p}/devices/{dev}/availability",
                        h.availability(dev, "offline" if d % 50 == 7 else "online"),
                    )
                )
            if len(batch) >= 2000:
                await asyncio.gather(
                    *(client.publish(t, json.dumps(b), qos=1, retain=True) for t, b in batch)
                )
                n += len(batch)
                batch = []
        if batch:
            await asyncio.gather(
                *(client.publish(t, json.dumps(b), qos=1, retain=True) for t, b in batch)
            )
            n += len(batch)
    return {"retained_messages": n, "seconds": round(time.monotonic() - t0, 1)}


async def latency_phase(
    cluster: NatsCluster,
    db: str,
    work: Path,
    hubs: list[EmulatedHub],
    args: argparse.Namespace,
    specs: list[MallSpec],
    procs: Procs,
) -> dict[str, Any]:
    engine = await open_store(db)
    password = secrets.token_urlsafe(12)
    await add_user(engine, "bench", "officer", password)
    await engine.dispose()
    port = free_port()
    cfg = work / "latency.yaml"
    write_config(cfg, cluster, db, specs, port=port, workers=2)
    procs.start("run", "-c", str(cfg))
    url = f"http://127.0.0.1:{port}"
    expected_devices = args.malls * args.devices

    async def rebuilt() -> bool:
        try:
            n = await scalar(db, "SELECT count(*) FROM patrol_devices")
            m = await scalar(db, "SELECT count(*) FROM patrol_malls WHERE state = 'online'")
        except asyncpg.UndefinedTableError:
            return False
        return bool(int(n) >= expected_devices and int(m) >= args.malls)

    t0 = time.monotonic()
    await wait_for(rebuilt, 600, "the city's view rebuilt")
    rebuild_s = time.monotonic() - t0
    seen: dict[str, float] = {}
    sent: dict[str, float] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(100):
            try:
                async with http.post(
                    f"{url}/api/v1/session", json={"name": "bench", "password": password}
                ) as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        async with http.get(f"{url}/api/v1/malls") as r:
            malls_ms = time.monotonic()
            body = await r.json()
            malls_ms = (time.monotonic() - malls_ms) * 1000
            assert body["count"] == args.malls, body["count"]
        live = await http.get(f"{url}/api/v1/live", timeout=aiohttp.ClientTimeout(total=None))

        async def read() -> None:
            event = ""
            async for raw in live.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "alarm":
                    seen[json.loads(line[6:])["event_id"]] = time.time()

        reader = asyncio.create_task(read())
        nc = await nats.connect(cluster.urls[1:] + cluster.urls[:1])
        items = alarms(hubs, int(args.rate * args.burst_s))
        t0 = time.monotonic()
        await publish_paced(nc, items, args.rate, sent)
        pub_s = time.monotonic() - t0

        async def all_seen() -> bool:
            return len(seen) >= len(items)

        try:
            await wait_for(all_seen, 120, "every alarm on the overview")
        finally:
            reader.cancel()
            live.close()
            await nc.close()
    rows = await fetch(
        db,
        "SELECT event_id, extract(epoch from stored_at) AS s FROM patrol_events "
        "WHERE category = 'alarm'",
    )
    stored = {r["event_id"]: float(r["s"]) for r in rows}
    to_store = [(stored[e] - t) * 1000 for e, t in sent.items() if e in stored]
    to_screen = [(seen[e] - t) * 1000 for e, t in sent.items() if e in seen]
    procs.stop()
    return {
        "rebuild_s": round(rebuild_s, 1),
        "malls_api_ms": round(malls_ms, 1),
        "alarms": len(items),
        "offered_rate": args.rate,
        "achieved_rate": round(len(items) / pub_s, 1),
        "stored": len(to_store),
        "shown": len(to_screen),
        "store_p50_ms": round(percentile(to_store, 50), 1),
        "store_p99_ms": round(percentile(to_store, 99), 1),
        "screen_p50_ms": round(percentile(to_screen, 50), 1),
        "screen_p99_ms": round(percentile(to_screen, 99), 1),
    }


async def throughput_phase(
    cluster: NatsCluster,
    admin_db: str,
    work: Path,
    hubs: list[EmulatedHub],
    n_workers: int,
    events: int,
    specs: list[MallSpec],
    procs: Procs,
) -> dict[str, Any]:
    nc = await nats.connect(cluster.urls)
    js = nc.jetstream()
    with contextlib.suppress(Exception):
        await js.purge_stream("MALLHUB")
    items = alarms(hubs, events)
    await publish_paced(nc, items, 1e9, None)
    await nc.close()
    async with fresh_database(admin_db) as db:
        engine = await open_store(db)
        await engine.dispose()
        cfg = work / f"tp{n_workers}.yaml"
        write_config(
            cfg,
            cluster,
            db,
            specs,
            nats={"durable": f"tp{n_workers}x{uuid.uuid4().hex[:6]}"},
            workers=1,
        )
        for _ in range(n_workers):
            procs.start("worker", "-c", str(cfg), "--workers", "1")

        async def done() -> bool:
            return int(await scalar(db, "SELECT count(*) FROM patrol_events")) >= events

        await wait_for(done, 900, f"{events} events stored by {n_workers} worker(s)")
        span = await scalar(
            db, "SELECT extract(epoch from max(stored_at) - min(stored_at)) FROM patrol_events"
        )
        dup = await scalar(db, "SELECT coalesce(sum(deliveries - 1), 0) FROM patrol_events")
        procs.stop()
    rate = events / max(float(span), 1e-3)
    return {
        "workers": n_workers,
        "events": events,
        "seconds": round(float(span), 2),
        "events_per_s": round(rate, 1),
        "duplicates": int(dup),
    }


async def failover_phase(
    cluster: NatsCluster,
    admin_db: str,
    work: Path,
    hubs: list[EmulatedHub],
    args: argparse.Namespace,
    specs: list[MallSpec],
    procs: Procs,
) -> dict[str, Any]:
    async with fresh_database(admin_db) as db:
        engine = await open_store(db)
        await engine.dispose()
        cfg = work / "failover.yaml"
        write_config(
            cfg, cluster, db, specs, nats={"durable": f"fo{uuid.uuid4().hex[:6]}"}, workers=2
        )
        before = 0
        procs.start("worker", "-c", str(cfg))
        nc = await nats.connect(
            cluster.urls[1:] + cluster.urls[:1], max_reconnect_attempts=-1, reconnect_time_wait=0.1
        )
        with contextlib.suppress(Exception):
            await nc.jetstream().purge_stream("MALLHUB")
        durable = yaml.safe_load(cfg.read_text())["nats"]["durable"]

        async def worker_ready() -> bool:
            try:
                await nc.jetstream().consumer_info("MALLHUB", durable)
            except Exception:
                return False
            return True

        # The worker has started (its consumer exists) before a node is killed.
        await wait_for(worker_ready, 120, "the worker's consumer")
        items = alarms(hubs, int(args.rate * args.burst_s))
        sent: dict[str, float] = {}
        victim = cluster.nodes[0]

        async def chaos() -> None:
            await asyncio.sleep(args.burst_s / 3)
            await asyncio.to_thread(cluster.kill_node, victim)
            await asyncio.sleep(args.burst_s / 3)
            await asyncio.to_thread(cluster.restart_node, victim)

        c = asyncio.create_task(chaos())
        published, retries = await publish_paced(nc, items, args.rate, sent)
        await c
        await nc.close()

        async def done() -> bool:
            return int(await scalar(db, "SELECT count(*) FROM patrol_events")) >= len(sent)

        with contextlib.suppress(RuntimeError):
            await wait_for(done, 300, "every alarm stored after the failover")
        stored = int(await scalar(db, "SELECT count(*) FROM patrol_events"))
        dup = int(await scalar(db, "SELECT coalesce(sum(deliveries - 1), 0) FROM patrol_events"))
        procs.stop()
    return {
        "published": published,
        "unique": len(sent),
        "stored": stored - before,
        "lost": len(sent) - stored,
        "publisher_retries": retries,
        "duplicates_counted": dup,
    }


async def raw_baseline(
    cluster: NatsCluster, hubs: list[EmulatedHub], args: argparse.Namespace
) -> dict[str, Any]:
    """nats-py alone: publish → pull-consume → ack on a stream of its own, same payloads."""
    nc = await nats.connect(cluster.urls)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="RAW", subjects=["raw.>"], num_replicas=3))
    items = [
        (s.replace("mallhub.v1.", "raw."), p)
        for s, p in alarms(hubs, int(args.rate * args.burst_s))
    ]
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    sub = await js.pull_subscribe("raw.>", durable="raw")

    async def consume() -> None:
        while len(got) < len(items):
            try:
                msgs = await sub.fetch(500, timeout=1)
            except Exception:
                continue
            now = time.time()
            for m in msgs:
                got[json.loads(m.data)["event_id"]] = now
                await m.ack()

    consumer = asyncio.create_task(consume())
    await publish_paced(nc, items, args.rate, sent)
    await asyncio.wait_for(consumer, 120)
    lat = [(got[e] - t) * 1000 for e, t in sent.items() if e in got]
    # Sustained: the same number of messages preloaded, then consumed as fast as possible.
    await js.purge_stream("RAW")
    preload = [(s.replace("mallhub.v1.", "raw."), p) for s, p in alarms(hubs, args.events)]
    await publish_paced(nc, preload, 1e9, None)
    sub2 = await js.pull_subscribe("raw.>", durable="raw2")
    n = 0
    t0 = time.monotonic()
    while n < len(preload):
        try:
            msgs = await sub2.fetch(500, timeout=1)
        except Exception:
            continue
        for m in msgs:
            await m.ack()
        n += len(msgs)
    rate = n / (time.monotonic() - t0)
    await nc.close()
    return {
        "p50_ms": round(percentile(lat, 50), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "consume_per_s": round(rate, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print_machine()
    specs = city_specs(args.malls, args.devices, prefix="bench")
    hubs = [EmulatedHub(s, "127.0.0.1", 1) for s in specs]
    results: dict[str, Any] = {"machine": machine(), "malls": args.malls, "devices": args.devices}
    with tempfile.TemporaryDirectory(prefix="bench-city-") as tmp:
        work = Path(tmp)
        procs = Procs(work)
        cluster = NatsCluster(work / "nats", 3)
        try:
            await asyncio.to_thread(cluster.start)
            await cluster.wait_jetstream()
            nc = await nats.connect(cluster.urls)
            await nc.jetstream().add_stream(
                StreamConfig(
                    name="MALLHUB", subjects=["mallhub.v1.>"], num_replicas=3, max_age=86400
                )
            )
            await nc.close()
            results["city"] = await setup_city(cluster, hubs, args.devices)
            print(f"city: {results['city']}", flush=True)
            async with fresh_database(args.database_url) as db:
                results["latency"] = await latency_phase(
                    cluster, db, work, hubs, args, specs, procs
                )
            print(f"latency: {results['latency']}", flush=True)
            results["raw"] = await raw_baseline(cluster, hubs, args)
            print(f"raw: {results['raw']}", flush=True)
            tp = []
            for k in [int(x) for x in args.workers.split(",")]:
                tp.append(
                    await throughput_phase(
                        cluster, args.database_url, work, hubs, k, args.events, specs, procs
                    )
                )
                print(f"throughput: {tp[-1]}", flush=True)
            results["throughput"] = tp
            results["failover"] = await failover_phase(
                cluster, args.database_url, work, hubs, args, specs, procs
            )
            print(f"failover: {results['failover']}", flush=True)
        finally:
            procs.stop()
            await asyncio.to_thread(cluster.stop)
    lat, raw = results["latency"], results["raw"]
    one = next((t["events_per_s"] for t in results["throughput"] if t["workers"] == 1), None)
    two = next((t["events_per_s"] for t in results["throughput"] if t["workers"] == 2), None)
    ratio = round(two / one, 2) if one and two else None
    results["scale_out_2_over_1"] = ratio
    print(
        table(
            ["measure", "patrol", "raw nats-py", "goal"],
            [
                [
                    "publish→stored p50/p99 ms",
                    f"{lat['store_p50_ms']}/{lat['store_p99_ms']}",
                    "",
                    "",
                ],
                [
                    "publish→screen p50/p99 ms",
                    f"{lat['screen_p50_ms']}/{lat['screen_p99_ms']}",
                    f"{raw['p50_ms']}/{raw['p99_ms']}",
                    f"p99 ≤ 1000 {verdict(lat['screen_p99_ms'] <= 1000)}",
                ],
                ["burst rate achieved /s", lat["achieved_rate"], "", f"{args.rate}"],
                *[
                    [
                        f"events/s, {t['workers']} worker(s)",
                        t["events_per_s"],
                        raw["consume_per_s"] if t["workers"] == 1 else "",
                        "",
                    ]
                    for t in results["throughput"]
                ],
                ["2 workers / 1", ratio, "", f"≥ 1.7 {verdict(bool(ratio and ratio >= 1.7))}"],
                [
                    "failover lost / duplicates",
                    f"{results['failover']['lost']} / {results['failover']['duplicates_counted']}",
                    "",
                    f"0 lost {verdict(results['failover']['lost'] == 0)}",
                ],
            ],
        )
    )
    return results
