"""Errors raised by drivers. Library exceptions are converted into these at the boundary."""

from __future__ import annotations

from typing import Literal

Violation = Literal["too_large", "not_xml", "wrong_namespace", "not_soap", "invalid"]
"""What was wrong with an answer that broke the protocol (``invalid``: anything else)."""


class AdapterError(Exception):
    """Base class: something went wrong talking to a device."""

    def __init__(self, device_id: str, message: str) -> None:
        super().__init__(f"{device_id}: {message}")
        self.device_id = device_id
        self.message = message


class DeviceUnreachable(AdapterError):
    """The device did not answer (refused, timed out, DNS, routing)."""


class AuthFailed(AdapterError):
    """The device rejected our credentials."""


class NotSupported(AdapterError):
    """The device does not offer the requested operation or service."""


class ProtocolViolation(AdapterError):
    """The device answered with something that does not follow the protocol."""

    def __init__(self, device_id: str, message: str, *, violation: Violation = "invalid") -> None:
        super().__init__(device_id, message)
        self.violation: Violation = violation
