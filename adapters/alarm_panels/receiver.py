"""Receiver decisions for one frame: pure (frame bytes + receipt time → events and reply).

Replies, as the protocol notes require:

* bad LEN or CRC, unreadable header → no reply (the panel resends);
* unconfigured account → NAK (the panel's installer sees a failure; the hub raises
  ``fault.unknown_account``);
* timestamp outside −40 s/+20 s, or missing on an encrypted message → NAK with our clock;
* encrypted message that cannot be decrypted (no key, wrong key) → NAK, counted as
  ``decrypt``. A decryption failure is a key or transmission problem the panel should retry
  and report, not a message "understood but unsupported"; DUH would tell it to give up.
* an account configured with a key sending unencrypted → NAK, counted as ``unencrypted``;
* intact but not understood before anything could be stored (a malformed header or
  content, a vendor header variant) → DUH;
* from a known account, data that cannot be decoded (an unsupported message type, a data
  block that is not SIA-DCS or Contact ID) → stored as ``alarm.unknown`` with the raw data,
  then ACK: never a DUH for something the hub has stored;
* otherwise ACK once every decoded event is stored. NULL, and an event message with an empty
  data block (``"SIA-DCS"0001L0#1234[]``), carry no event: ACK, supervision timer restarted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..device_event import DeviceEvent, SourceValue
from . import crypto
from .codes import UNKNOWN_KIND
from .config import AccountConfig
from .payload import (
    PanelEvent,
    PayloadError,
    decode_cid,
    decode_sia,
    decode_xdata,
    public_xdata,
    split_account,
)
from .protocol import (
    Envelope,
    FrameRejected,
    Message,
    ReplyKind,
    build_ack,
    build_duh,
    build_nak,
    open_envelope,
    parse_envelope,
    timestamp_in_window,
)

PROTOCOL = "sia-dc09"
_EVENT_TOKENS = ("SIA-DCS", "ADM-CID")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one frame: store ``events``, then send ``reply`` (if any)."""

    reply_kind: ReplyKind
    reply: bytes | None
    events: tuple[DeviceEvent, ...] = ()
    reason: str | None = None
    """Rejection reason to count, None when the frame was accepted."""
    detail: str = ""
    account: AccountConfig | None = None
    """The configured account the frame came from."""
    alive: bool = False
    """The frame is a trustworthy sign of life for the account's supervision."""
    unknown_account: str | None = None
    envelope: Envelope | None = None
    unknown_codes: int = 0
    """Events whose code is not in the hub's tables (stored as ``alarm.unknown``)."""


def dedupe_key(account: str, envelope: Envelope, data: str, index: int) -> str:
    """Stable across resends of one message (timestamp and pad may change), distinct for
    another message: account, sequence number, message type and data, plus the event's index."""
    digest = hashlib.sha256(
        f"{account}|{envelope.seq}|{envelope.token}|{data}".encode("ascii")
    ).hexdigest()
    return f"{PROTOCOL}:{account}:{envelope.seq}:{digest[:32]}:{index}"


class FrameProcessor:
    """Turns frames into verdicts for a fixed set of accounts."""

    def __init__(
        self,
        accounts: Iterable[AccountConfig],
        *,
        pad_source: Callable[[int], bytes] = crypto.random_pad,
    ) -> None:
        self._accounts = {a.account: a for a in accounts}
        self._pad_source = pad_source

    def account(self, account: str) -> AccountConfig | None:
        """The configuration of ``account`` (any case), or None."""
        return self._accounts.get(account.upper())

    def process(self, frame: bytes, now: datetime) -> Verdict:
        """Decide about one frame received at ``now`` (aware UTC). Never raises."""
        try:
            envelope = parse_envelope(frame)
        except FrameRejected as rejected:
            return self._rejected(rejected, now)
        cfg = self._accounts.get(envelope.account.upper())
        if cfg is None:
            return Verdict(
                "nak",
                build_nak(now),
                reason="account",
                detail=f"unconfigured account {envelope.account}",
                unknown_account=envelope.account.upper(),
                envelope=envelope,
            )
        if cfg.key is not None and not envelope.encrypted:
            return Verdict(
                "nak",
                build_nak(now),
                reason="unencrypted",
                detail="unencrypted message for an account with a key",
                account=cfg,
                envelope=envelope,
            )
        try:
            message = open_envelope(envelope, cfg.key)
        except FrameRejected as rejected:
            # Anything but a decryption failure proves the panel (and its key) is there.
            return self._rejected(rejected, now, cfg, alive=rejected.reason != "decrypt")
        if message.timestamp is not None and not timestamp_in_window(message.timestamp, now):
            return Verdict(
                "nak",
                build_nak(now),
                reason="timestamp",
                detail=f"timestamp {message.timestamp.isoformat()} outside the window",
                account=cfg,
                alive=True,
                envelope=envelope,
            )
        return self._accepted(cfg, message, now)

    def _rejected(
        self,
        rejected: FrameRejected,
        now: datetime,
        cfg: AccountConfig | None = None,
        *,
        alive: bool = False,
    ) -> Verdict:
        reply: bytes | None
        if rejected.reply == "nak":
            reply = build_nak(now)
        elif rejected.reply == "duh":
            reply = build_duh(rejected.envelope)
        else:
            reply = None
        return Verdict(
            rejected.reply,
            reply,
            reason=rejected.reason,
            detail=rejected.detail,
            account=cfg,
            alive=alive,
            envelope=rejected.envelope,
        )

    def _accepted(self, cfg: AccountConfig, message: Message, now: datetime) -> Verdict:
        envelope = message.envelope
        ack = build_ack(envelope, cfg.key, now, self._pad_source)
        _, body = split_account(message.data)
        if envelope.token == "NULL" or (envelope.token in _EVENT_TOKENS and not body):
            # Supervision, or an event message with an empty data block: nothing to store.
            return Verdict("ack", ack, account=cfg, alive=True, envelope=envelope)
        decoded: list[PanelEvent] | None = None
        reason: str | None = None
        detail = ""
        try:
            if envelope.token == "SIA-DCS":
                decoded = decode_sia(body)
            elif envelope.token == "ADM-CID":
                decoded = decode_cid(body)
            else:
                reason, detail = "unsupported", f"unsupported message type {envelope.token}"
        except PayloadError as exc:
            reason, detail = "payload", str(exc)
        if decoded is None:
            # Intact but not understood: stored as it came, then acknowledged. Once the
            # hub holds the message, a DUH would only make the panel give up on (or resend)
            # what the operator already sees.
            event = self._unknown_event(cfg, message, body, now)
            return Verdict(
                "ack",
                ack,
                events=(event,),
                reason=reason,
                detail=detail,
                account=cfg,
                alive=True,
                envelope=envelope,
            )
        events = tuple(
            self._event(cfg, message, item, index, now) for index, item in enumerate(decoded)
        )
        unknown = sum(1 for item in decoded if not item.classified.known)
        return Verdict(
            "ack",
            ack,
            events=events,
            account=cfg,
            alive=True,
            envelope=envelope,
            unknown_codes=unknown,
        )

    def _source(self, cfg: AccountConfig, message: Message, fmt: str) -> dict[str, SourceValue]:
        envelope = message.envelope
        return {
            "protocol": PROTOCOL,
            "format": fmt,
            "account": cfg.account,
            "receiver": envelope.receiver,
            "prefix": envelope.prefix,
            "seq": int(envelope.seq),
            "encrypted": envelope.encrypted,
        }

    def _event(
        self, cfg: AccountConfig, message: Message, item: PanelEvent, index: int, now: datetime
    ) -> DeviceEvent:
        source = self._source(cfg, message, item.format)
        source.update(
            code=item.code,
            qualifier=item.classified.qualifier,
            zone=item.zone,
            area=item.area,
        )
        if item.user is not None:
            source["user"] = item.user
        if item.text is not None:
            source["text"] = item.text
        if item.time is not None:
            source["panel_time"] = item.time
        for name, value in item.modifiers.items():
            source[f"sia_{name}"] = value
        detail: dict[str, Any] = {"priority": item.classified.priority}
        if item.classified.arming is not None:
            detail["arming"] = item.classified.arming
        if item.classified.status_of is not None:
            detail["status_of"] = item.classified.status_of
        if message.extended:
            detail["x_data"] = public_xdata(message.extended)
            extended = detail["extended"] = decode_xdata(message.extended)
            if item.text is None and extended.get("alarm_text"):
                source["text"] = extended["alarm_text"]
        return DeviceEvent(
            device_id=cfg.device_for(item.zone),
            kind=item.classified.kind,
            occurred_at=message.timestamp or now,
            source=source,
            dedupe_key=dedupe_key(cfg.account, message.envelope, message.data, index),
            detail=detail,
        )

    def _unknown_event(
        self, cfg: AccountConfig, message: Message, body: str, now: datetime
    ) -> DeviceEvent:
        source = self._source(cfg, message, message.envelope.token)
        source.update(code=body, qualifier="new", zone=None, area=None)
        return DeviceEvent(
            device_id=cfg.panel_device_id,
            kind=UNKNOWN_KIND,
            occurred_at=message.timestamp or now,
            source=source,
            dedupe_key=dedupe_key(cfg.account, message.envelope, message.data, 0),
            detail={"undecodable": True},
        )
