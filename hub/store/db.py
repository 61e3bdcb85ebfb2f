"""Engine creation and migrations for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")


class StoreError(Exception):
    """The store could not be opened or migrated."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (console, outbox drain) work while the writer commits; FULL makes a
    # commit survive power loss, which is what "stored before ACK" must mean for an alarm.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def private_sqlite_file(path: Path) -> None:
    """The SQLite file holds password hashes and the audit log: its directory is made (or
    tightened to) 0700 and the file, with its -wal and -shm companions, 0600, whatever the
    umask or the mode of a directory the user made. SQLite gives the companions the mode
    of the main file when it creates them."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.stat()
    # Only a directory of our own that is not a shared one (like /tmp, sticky) is tightened.
    if st.st_uid == os.getuid() and not st.st_mode & stat.S_ISVTX and st.st_mode & 0o077:
        directory.chmod(stat.S_IMODE(st.st_mode) & 0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(f.stat().st_mode)
            if mode & 0o077:
                f.chmod(mode & 0o600)


def create_engine(url: str) -> AsyncEngine:
    """Create an async engine; the SQLite file's directory is created when missing, and the
    file is readable by the hub's user only."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_sqlite_file(Path(parsed.database))
        engine = create_async_engine(url, pool_size=8, max_overflow=4)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""

    def run(conn: Connection) -> tuple[str | None, str | None]:
        before = MigrationContext.configure(conn).get_current_revision()
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        return before, MigrationContext.configure(conn).get_current_revision()

    async with engine.begin() as conn:
        before, after = await conn.run_sync(run)
    # One line of our own: alembic's per-step lines are kept off the operator's terminal.
    if before != after:
        log.info("store: schema upgraded from %s to %s", before or "an empty database", after)


async def current_revision(engine: AsyncEngine) -> str | None:
    def run(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(run)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def safe_url(url: str) -> str:
    """The URL with any password hidden, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)
