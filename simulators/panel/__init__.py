"""Alarm panel simulator: a transmitter speaking SIA DC-09 over TCP or UDP.

It behaves like a real panel: numbered frames (1..9999, wrapping), waits for the ACK that
echoes its sequence number, resends on timeout or NAK (taking the receiver's clock from the
NAK), holds events while the receiver is unreachable and reconnects with backoff. Fault
switches inject bad CRC, bad length, garbage, split and joined frames, an unknown account and
unknown codes.

- ``wire``: the wire format, written independently of the hub's receiver.
- ``transmitter``: :class:`PanelSimulator`, the panel itself.
- ``cli``: ``mallsim panel``.
"""

from simulators.panel.cli import configure_parser, run
from simulators.panel.transmitter import Outgoing, PanelSimulator
from simulators.panel.wire import (
    FAULTS,
    Fault,
    Reply,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    build_frame,
    cid_payload,
    crc16,
    dc09_time,
    key_from_text,
    parse_reply,
    sia_payload,
)

__all__ = [
    "FAULTS",
    "Fault",
    "Outgoing",
    "PanelSimulator",
    "Reply",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "build_frame",
    "cid_payload",
    "configure_parser",
    "crc16",
    "dc09_time",
    "key_from_text",
    "parse_reply",
    "run",
    "sia_payload",
]
