"""Fixtures: a private Mosquitto per test, databases (SQLite always, PostgreSQL when
``MALLHUB_TEST_DATABASE_URL`` is set), and the police platform simulator."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy.engine import make_url

from hub.broker import LocalMosquitto

PG_ENV = "MALLHUB_TEST_DATABASE_URL"

# How long one example takes depends on the machine's load, not on the code under test: no
# per-example deadline (it is a wall-clock threshold). A hung example is still stopped by
# pytest-timeout. The suite draws the same examples on every run, so that a red run can be
# repeated and a green one means the same thing next time; HYPOTHESIS_PROFILE=explore draws
# new ones (1000 where a test does not set its own number) to look for what the fixed draw
# does not reach.
settings.register_profile("mallhub", deadline=None, derandomize=True, database=None)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "mallhub"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests that run a CLI's ``main()`` get its logging set-up (a handler on the stderr that
    pytest captured for that test); put the root logger back so later tests do not write to
    a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalMosquitto]:
    b = LocalMosquitto(tmp_path / "mosquitto")
    b.start()
    try:
        yield b
    finally:
        b.stop()


async def _pg_admin(sql: str) -> None:
    import asyncpg

    url = make_url(os.environ[PG_ENV])
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        return
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} is not set (.ci/run sets it)")
    name = f"mallhub_t_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = make_url(os.environ[PG_ENV]).set(database=name, drivername="postgresql+asyncpg")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        await asyncio.sleep(0)
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
