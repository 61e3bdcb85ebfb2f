"""Snapshot evidence: the URL-signing secret, tokens, and attachments (no network)."""

from __future__ import annotations

import base64
import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from hub.linkage.snapshots import (
    SECRET_FILE,
    SnapshotStore,
    TokenInvalid,
    load_or_create_secret,
    sign_token,
    sniff_content_type,
    verify_token,
)

EVENT = "0193a9c2-7f1e-7c3a-9a57-2f4b8e1d6a10"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"


def test_secret_is_created_private_once_and_reused(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "data")
    path = tmp_path / "data" / SECRET_FILE
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    assert load_or_create_secret(tmp_path / "data") == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # widened permissions are narrowed


def test_token_grants_one_snapshot_of_one_event_until_it_expires(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path)
    token = sign_token(secret, 7, EVENT, NOW + timedelta(hours=1))
    claim = verify_token(secret, 7, token, event_id=EVENT, now=NOW)
    assert claim.event_id == EVENT and claim.snapshot_id == 7
    with pytest.raises(TokenInvalid, match="signature"):
        verify_token(secret, 8, token, now=NOW)  # another snapshot
    with pytest.raises(TokenInvalid, match="another event"):
        verify_token(secret, 7, token, event_id=EVENT.replace("0193", "0194"), now=NOW)
    with pytest.raises(TokenInvalid, match="expired"):
        verify_token(secret, 7, token, now=NOW + timedelta(hours=2))
    with pytest.raises(TokenInvalid, match="signature"):
        verify_token(b"x" * 32, 7, token, now=NOW)  # another hub's secret
    version, ev, exp, mac = token.split(".")
    longer = f"{version}.{ev}.{int(exp) + 3600}.{mac}"
    with pytest.raises(TokenInvalid, match="signature"):
        verify_token(secret, 7, longer, now=NOW)  # extending the expiry breaks the MAC
    for junk in ("", "v1", "v1.a.b.c", "v2.x.1.y", "v1.!!.1.abc"):
        with pytest.raises(TokenInvalid):
            verify_token(secret, 7, junk, now=NOW)


def test_sniffing() -> None:
    assert sniff_content_type(JPEG) == "image/jpeg"
    assert sniff_content_type(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff_content_type(b"<html>error</html>") is None
    assert sniff_content_type(b"") is None


async def test_store_writes_file_row_and_inline_or_url_attachment(tmp_path: Path) -> None:
    ops: list[Any] = []

    async def submit(op: Any) -> int:
        ops.append(op)
        return len(ops)

    secret = load_or_create_secret(tmp_path)
    inline = SnapshotStore(
        tmp_path,
        secret,
        submit,
        inline_max_bytes=len(JPEG),
        public_url="https://hub.example:8443/",
        url_ttl=timedelta(days=1),
    )
    snap = await inline.save(EVENT, "cam-gate-1", JPEG, "image/jpeg", NOW)
    assert snap.path.read_bytes() == JPEG
    assert snap.sha256 == hashlib.sha256(JPEG).hexdigest() == ops[0].sha256
    assert snap.path.is_relative_to(tmp_path / "snapshots")
    item = inline.attachment(snap, JPEG)
    assert base64.b64decode(item["data_base64"]) == JPEG and "url" not in item
    assert item["bytes"] == len(JPEG) and item["taken_at"] == "2026-11-22T08:00:00.000Z"

    by_url = SnapshotStore(
        tmp_path,
        secret,
        submit,
        inline_max_bytes=len(JPEG) - 1,
        public_url="https://hub.example:8443/",
        url_ttl=timedelta(days=1),
    )
    item = by_url.attachment(snap, JPEG, now=datetime.now(UTC))
    assert "data_base64" not in item
    url = urlsplit(item["url"])
    assert url.netloc == "hub.example:8443" and url.path == f"/snapshots/{snap.id}"
    token = parse_qs(url.query)["token"][0]
    assert by_url.verify(snap.id, token, event_id=EVENT).event_id == EVENT
