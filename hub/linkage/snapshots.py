"""Snapshots as evidence: stored with their sha256, attached inline or as a signed URL.

A snapshot file is written once under ``<data_dir>/snapshots/<yyyy-mm-dd>/`` and never
changed; its row in ``snapshots`` holds the sha256 of exactly those bytes, so the police (and a
court) can check that the picture they got is the one the camera gave.

Snapshots too big to travel inline are published as a URL on the hub:
``<public_url>/snapshots/<id>?token=<token>``. The token is an HMAC-SHA256, under a per-hub
secret, over the snapshot id, the event id and an expiry time, so a URL cannot be altered to
reach another snapshot and stops working when it expires. The web server checks it with
:func:`verify_token`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.store.models import Snapshot
from hub.store.writer import WriteContext, iso

SECRET_FILE = "snapshot-url.key"
SECRET_BYTES = 32
_TOKEN_VERSION = "v1"


class TokenInvalid(ValueError):
    """A snapshot token is malformed, forged, for another snapshot, or expired."""


def load_or_create_secret(data_dir: Path) -> bytes:
    """The hub's URL-signing secret, generated on first start into ``data_dir`` (mode 0600)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) < SECRET_BYTES:
            raise ValueError(f"{path}: the snapshot URL secret is too short") from None
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            # Somebody widened it: the secret is what keeps evidence private.
            path.chmod(0o600)
        return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
        f.flush()
        os.fsync(f.fileno())
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, snapshot_id: int, event_id: str, expires: int) -> bytes:
    msg = f"{_TOKEN_VERSION}\n{snapshot_id}\n{event_id}\n{expires}".encode()
    return hmac.new(secret, msg, hashlib.sha256).digest()


def sign_token(secret: bytes, snapshot_id: int, event_id: str, expires: datetime) -> str:
    """A token granting access to one snapshot of one event until ``expires``."""
    exp = int(expires.timestamp())
    mac = _mac(secret, snapshot_id, event_id, exp)
    return f"{_TOKEN_VERSION}.{_b64(event_id.encode())}.{exp}.{_b64(mac)}"


@dataclass(frozen=True, slots=True)
class TokenClaim:
    snapshot_id: int
    event_id: str
    expires: datetime


def verify_token(
    secret: bytes,
    snapshot_id: int,
    token: str,
    *,
    event_id: str | None = None,
    now: datetime | None = None,
) -> TokenClaim:
    """Check a snapshot URL's token; returns what it grants or raises ``TokenInvalid``.

    ``event_id``, when given (the snapshot row's event), must be the one the token names.
    """
    try:
        version, event_part, exp_text, mac_part = token.split(".")
        if version != _TOKEN_VERSION:
            raise TokenInvalid("unknown token version")
        token_event = _unb64(event_part).decode("ascii")
        exp = int(exp_text)
        mac = _unb64(mac_part)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenInvalid("malformed token") from exc
    if not hmac.compare_digest(mac, _mac(secret, snapshot_id, token_event, exp)):
        raise TokenInvalid("bad signature")
    if event_id is not None and event_id != token_event:
        raise TokenInvalid("token is for another event")
    expires = datetime.fromtimestamp(exp, UTC)
    if (now or datetime.now(UTC)) >= expires:
        raise TokenInvalid("token expired")
    return TokenClaim(snapshot_id, token_event, expires)


def snapshot_url(base_url: str, snapshot_id: int, token: str) -> str:
    return f"{base_url.rstrip('/')}/snapshots/{snapshot_id}?token={token}"


def sniff_content_type(data: bytes) -> str | None:
    """The image type from the first bytes, or None when it is not an image we accept."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return None


@dataclass(slots=True)
class AddSnapshot:
    """Store one snapshot's row (its file is already written); returns the row id."""

    event_id: str
    camera_id: str
    taken_at: datetime
    content_type: str
    size: int
    sha256: str
    path: str

    async def apply(self, ctx: WriteContext) -> int:
        row = Snapshot(
            event_id=self.event_id,
            camera_id=self.camera_id,
            taken_at=self.taken_at,
            content_type=self.content_type,
            size=self.size,
            sha256=self.sha256,
            path=self.path,
        )
        ctx.session.add(row)
        await ctx.session.flush()
        ctx.audit(
            "hub",
            "snapshot.stored",
            self.event_id,
            {"snapshot_id": row.id, "camera_id": self.camera_id, "sha256": self.sha256},
        )
        return int(row.id)


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    id: int
    event_id: str
    camera_id: str
    taken_at: datetime
    content_type: str
    size: int
    sha256: str
    path: Path


class SnapshotStore:
    """Writes snapshot files and rows, and turns them into update attachments."""

    def __init__(
        self,
        data_dir: Path,
        secret: bytes,
        submit: Any,
        *,
        inline_max_bytes: int,
        public_url: str,
        url_ttl: timedelta,
    ) -> None:
        self.root = data_dir / "snapshots"
        self.secret = secret
        self._submit = submit
        self.inline_max_bytes = inline_max_bytes
        self.public_url = public_url
        self.url_ttl = url_ttl

    async def save(
        self, event_id: str, camera_id: str, data: bytes, content_type: str, taken_at: datetime
    ) -> StoredSnapshot:
        """Write the file (in a thread: hashing and fsync block), then its row."""
        ext = "png" if content_type == "image/png" else "jpg"
        stamp = taken_at.astimezone(UTC)
        name = f"{event_id}_{camera_id}_{stamp.strftime('%H%M%S%f')}.{ext}"
        path = self.root / stamp.strftime("%Y-%m-%d") / name

        def write() -> str:
            digest = hashlib.sha256(data).hexdigest()
            _write_file(path, data)
            return digest

        digest = await asyncio.to_thread(write)
        snap_id: int = await self._submit(
            AddSnapshot(event_id, camera_id, taken_at, content_type, len(data), digest, str(path))
        )
        return StoredSnapshot(
            snap_id, event_id, camera_id, taken_at, content_type, len(data), digest, path
        )

    def attachment(
        self,
        snap: StoredSnapshot,
        data: bytes,
        *,
        now: datetime | None = None,
        inline_max_bytes: int | None = None,
    ) -> dict[str, Any]:
        """The update's attachment: inline base64 up to the configured size (or the given
        one; negative for never), else a URL."""
        item: dict[str, Any] = {
            "camera_id": snap.camera_id,
            "taken_at": iso(snap.taken_at),
            "content_type": snap.content_type,
            "bytes": snap.size,
            "sha256": snap.sha256,
        }
        limit = self.inline_max_bytes if inline_max_bytes is None else inline_max_bytes
        if snap.size <= limit:
            item["data_base64"] = base64.b64encode(data).decode("ascii")
        else:
            expires = (now or datetime.now(UTC)) + self.url_ttl
            token = sign_token(self.secret, snap.id, snap.event_id, expires)
            item["url"] = snapshot_url(self.public_url, snap.id, token)
        return item

    def verify(self, snapshot_id: int, token: str, *, event_id: str | None = None) -> TokenClaim:
        """:func:`verify_token` with this hub's secret."""
        return verify_token(self.secret, snapshot_id, token, event_id=event_id)
