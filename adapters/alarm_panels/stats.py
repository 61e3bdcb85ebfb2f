"""Counters of one receiver instance: plain Python, exported to metrics by the hub."""

from __future__ import annotations

import bisect
from collections import Counter, deque

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the ACK latency buckets; a final +Inf bucket follows."""

_MAX_UNKNOWN_ACCOUNTS = 1024
_OTHER = "other"


class ReceiverStats:
    """What the receiver did, by reason and by account. Not thread-safe (one event loop).

    ``rejections`` counts every input that was not simply accepted: ``crc``, ``length``,
    ``format``, ``garbage``, ``oversize``, ``account``, ``timestamp``, ``decrypt``,
    ``unencrypted``, ``unsupported``, ``payload``, ``ingest``, ``connection_limit``,
    ``overload``, ``idle``, ``frame_timeout``, and ``unknown_code`` (the event was still stored
    as ``alarm.unknown`` and acknowledged; counted so that unmapped codes get noticed).
    """

    def __init__(self, latency_samples: int = 1024) -> None:
        self.rejections: Counter[str] = Counter()
        self.frames: Counter[str] = Counter()
        """Intact frames per configured account."""
        self.acks: Counter[str] = Counter()
        """ACKs written per configured account."""
        self.replies: Counter[str] = Counter()
        """Replies written by kind: ``ack``, ``nak``, ``duh``."""
        self.events: Counter[str] = Counter()
        """Events stored through ``ingest``, by kind."""
        self.unknown_accounts: Counter[str] = Counter()
        """Frames per unconfigured account (bounded; the excess is counted under ``other``)."""
        self.connections_open = 0
        self.connections_total = 0
        self.ack_latencies: deque[float] = deque(maxlen=latency_samples)
        """The most recent receipt → ACK-written latencies, in seconds."""
        self.ack_latency_buckets: list[int] = [0] * (len(LATENCY_BUCKETS) + 1)
        """Non-cumulative counts per bucket of ``LATENCY_BUCKETS``, the last one is +Inf."""
        self.ack_latency_sum = 0.0
        self.ack_latency_count = 0

    def reject(self, reason: str) -> None:
        """Count one rejected input."""
        self.rejections[reason] += 1

    def unknown_account(self, account: str) -> None:
        """Count a frame from an unconfigured account."""
        if account in self.unknown_accounts or len(self.unknown_accounts) < _MAX_UNKNOWN_ACCOUNTS:
            self.unknown_accounts[account] += 1
        else:
            self.unknown_accounts[_OTHER] += 1

    def observe_ack_latency(self, seconds: float) -> None:
        """Record one receipt → ACK-written latency."""
        self.ack_latencies.append(seconds)
        self.ack_latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.ack_latency_sum += seconds
        self.ack_latency_count += 1
