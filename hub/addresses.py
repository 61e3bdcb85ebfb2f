"""Host names, IP addresses and URLs in the configuration: checked once, at load.

A typo here (``10.20.1.999``, ``http://cam 1``, ``cam_1..local``) otherwise shows up hours
later as a device that never answers. Each check raises ``ValueError`` with a message
that says what is wrong; pydantic turns it into an error naming the field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from urllib.parse import urlsplit

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOTTED = re.compile(r"[0-9.]+")
_ASCII_PRINTABLE = re.compile(r"[\x21-\x7e]+")


def check_host(value: str) -> str:
    """A host name (RFC 1123: letters, digits and '-' in dot-separated labels) or an IPv4
    or IPv6 address, without scheme, port or path. Returns ``value`` unchanged."""
    if not value:
        raise ValueError("is empty")
    if not _ASCII_PRINTABLE.fullmatch(value):
        if any(ch.isspace() for ch in value):
            raise ValueError(f"{value!r} contains a space or line break")
        raise ValueError(
            f"{value!r} is not an ASCII host name or address (write an international name "
            "in its xn-- form)"
        )
    if "://" in value or "/" in value:
        raise ValueError(f"{value!r} is a URL or path, not a host (give the host only)")
    if "@" in value:
        raise ValueError(f"{value!r} contains '@': put credentials in username/password")
    if ":" in value:
        bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a host: give the port in its own field, not after ':'"
            ) from None
        return value
    if _DOTTED.fullmatch(value):
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid IPv4 address") from None
        return value
    name = value[:-1] if value.endswith(".") else value
    if len(name) > 253:
        raise ValueError("a host name has at most 253 characters")
    for label in name.split("."):
        if not label:
            raise ValueError(f"{value!r} has an empty label ('..' or a leading '.')")
        if _LABEL.fullmatch(label) is None:
            raise ValueError(
                f"{value!r} is not a valid host name: each part has 1-63 letters, digits "
                "or '-', not starting or ending with '-' (no '_', no spaces)"
            )
    return value


def check_url(value: str, schemes: Collection[str]) -> str:
    """An absolute URL with one of ``schemes``, a valid host, a valid port, no spaces or
    control characters and no credentials. Returns ``value`` unchanged."""
    if not value:
        raise ValueError("is empty")
    if not _ASCII_PRINTABLE.fullmatch(value):
        raise ValueError(f"{value!r} contains spaces, control or non-ASCII characters")
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        listed = " or ".join(f"{s}://" for s in sorted(schemes))
        raise ValueError(f"{value!r} must start with {listed}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("put credentials in username/password, not in the URL")
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"{value!r} has a bad port (0-65535) or address") from None
    if not host:
        raise ValueError(f"{value!r} has no host")
    check_host(host)
    return value


def check_sip_uri(value: str) -> str:
    """``sip:host[:port]`` or ``sip:user@host[:port]`` (``sips:`` too)."""
    scheme, sep, rest = value.partition(":")
    if not sep or scheme not in ("sip", "sips") or rest.startswith("//"):
        raise ValueError(f"{value!r} must look like sip:host:port or sip:user@host:port")
    if not _ASCII_PRINTABLE.fullmatch(rest):
        raise ValueError(f"{value!r} contains spaces, control or non-ASCII characters")
    hostport = rest.split(";", 1)[0].rsplit("@", 1)[-1]
    host, port = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        host, port = hostport[: end + 1], hostport[end + 2 :]
    elif ":" in hostport:
        host, port = hostport.rsplit(":", 1)
    check_host(host)
    if port and (not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"{value!r} has a bad port (1-65535)")
    return value
