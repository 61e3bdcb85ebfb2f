"""Durable storage: SQLAlchemy 2 (async) on SQLite (WAL) or PostgreSQL, with Alembic."""

from hub.store.db import StoreError, create_engine, safe_url, upgrade
from hub.store.writer import StoredEvent, StoreUnavailable, StoreWriter

__all__ = [
    "StoreError",
    "StoreUnavailable",
    "StoreWriter",
    "StoredEvent",
    "create_engine",
    "safe_url",
    "upgrade",
]
