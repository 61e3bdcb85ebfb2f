"""Digest access authentication (RFC 2617 as RFC 3261 uses it): challenges and credentials."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from adapters.sip.message import SipParseError


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def _split_auth_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for match in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)', text):
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match.group(1).lower()] = value
    return params


def parse_challenge(value: str) -> DigestChallenge:
    """Parse a ``WWW-Authenticate`` / ``Proxy-Authenticate`` Digest challenge."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported authentication scheme {scheme!r}")
    params = _split_auth_params(rest)
    if "realm" not in params or "nonce" not in params:
        raise SipParseError("digest challenge without realm or nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm", "MD5"),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def parse_credentials(value: str) -> dict[str, str]:
    """Parameters of an ``Authorization: Digest ...`` header (names lowered)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported authentication scheme {scheme!r}")
    return _split_auth_params(rest)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_response(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
) -> str:
    """The ``response`` value of RFC 2617 digest (MD5 or MD5-sess; qop auth or none)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    if algorithm.upper() == "MD5-SESS":
        ha1 = _md5(f"{ha1}:{nonce}:{cnonce}")
    elif algorithm.upper() != "MD5":
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def build_authorization(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The value of an ``Authorization`` / ``Proxy-Authorization`` header for ``challenge``."""
    if challenge.qop and "auth" not in challenge.qop:
        raise ValueError(f"unsupported qop {','.join(challenge.qop)!r} (only auth)")
    qop = "auth" if challenge.qop else None
    nc_text = f"{nc:08x}"
    cnonce = cnonce or secrets.token_hex(8)
    response = digest_response(
        username=username,
        password=password,
        realm=challenge.realm,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        algorithm=challenge.algorithm,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
    )
    parts = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f'cnonce="{cnonce}"']
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(parts)
