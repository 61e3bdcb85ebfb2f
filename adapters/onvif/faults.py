"""How the ONVIF library's exceptions become the adapter's errors.

onvif-zeep-async, zeep and aiohttp raise a dozen exception types for what, to the hub, is one
of a few things: the camera is not there (``DeviceUnreachable``), refuses the credentials
(``AuthFailed``), lacks the operation (``NotSupported``), answers outside the protocol
(``ProtocolViolation``), or refuses the request with a SOAP fault (:class:`OnvifFault`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import aiohttp
import zeep.exceptions
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError

from adapters.errors import (
    AdapterError,
    AuthFailed,
    DeviceUnreachable,
    NotSupported,
    ProtocolViolation,
)
from adapters.onvif.records import brief, local_name
from adapters.onvif.transport import AnswerRefused

AUTH_SUBCODES: Final = frozenset({"NotAuthorized", "FailedAuthentication", "InvalidSecurity"})
UNSUPPORTED_SUBCODES: Final = frozenset(
    {
        "ActionNotSupported",
        "NotSupported",
        "OptionalOperationNotImplemented",
        "NoSuchService",
        "InvalidAction",
    }
)


class OnvifFault(AdapterError):
    """The camera understood the request and refused it with a SOAP fault (bad token, ...)."""

    def __init__(self, device_id: str, message: str, code: str, subcodes: Sequence[str]) -> None:
        super().__init__(device_id, message)
        self.code = code
        self.subcodes = tuple(subcodes)


def convert(device: str, what: str, exc: BaseException) -> AdapterError:
    """Map one library exception raised while doing ``what`` to the adapter error hierarchy."""
    if isinstance(exc, AnswerRefused):
        return ProtocolViolation(device, f"{what}: {exc}", violation=exc.violation)
    if isinstance(exc, zeep.exceptions.Fault):
        subcodes = [local_name(s) for s in (exc.subcodes or [])]
        code = local_name(exc.code)
        names = {code, *subcodes}
        text = f"{what}: SOAP fault {code}{'/' + '/'.join(subcodes) if subcodes else ''}"
        if names & AUTH_SUBCODES or "not authorized" in str(exc.message or "").lower():
            return AuthFailed(device, f"{text}: {exc.message}")
        if names & UNSUPPORTED_SUBCODES:
            return NotSupported(device, f"{text}: {exc.message}")
        return OnvifFault(device, f"{text}: {exc.message}", code, subcodes)
    if isinstance(exc, zeep.exceptions.TransportError):
        status = getattr(exc, "status_code", 0)
        if status in (401, 403):
            return AuthFailed(device, f"{what}: HTTP {status}")
        if status in (404, 405, 501):
            return NotSupported(device, f"{what}: HTTP {status}")
        # zeep puts the whole answer into the message; a reason is stored and sent on.
        return ProtocolViolation(device, f"{what}: {brief(str(exc))}")
    if isinstance(exc, zeep.exceptions.Error | ValueError | KeyError | TypeError):
        return ProtocolViolation(device, f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return ProtocolViolation(device, f"{what}: {exc}")
    if isinstance(exc, aiohttp.ClientError | OSError | ONVIFTimeoutError):
        return DeviceUnreachable(device, f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ONVIFAuthError):
        return AuthFailed(device, f"{what}: {exc}")
    if isinstance(exc, ONVIFError):
        # safe_func wraps the real cause; convert that when there is one.
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, ONVIFError):
            return convert(device, what, cause)
        if "support service" in str(exc):
            return NotSupported(device, f"{what}: {exc}")
        return ProtocolViolation(device, f"{what}: {exc}")
    return ProtocolViolation(device, f"{what}: unexpected {type(exc).__name__}: {exc}")
