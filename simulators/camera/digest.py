"""HTTP Digest authentication (RFC 7616 with MD5, RFC 2617 / 2069 answers accepted).

Used by the camera's snapshot and MJPEG URLs and by its RTSP server alike, as cameras do:
a request without valid credentials is answered 401 with a fresh nonce; an answer is
accepted when it is computed over a nonce this camera issued recently, the request's method
and URI, and the camera's ONVIF credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Iterator

REALM = "mallsim"


class DigestGuard:
    """Issues nonces and checks Digest ``Authorization`` header values for one camera."""

    def __init__(self, username: str, password: str, realm: str = REALM) -> None:
        self.username = username
        self._password = password
        self.realm = realm
        self._nonces: deque[str] = deque(maxlen=256)

    def challenge(self) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        nonce = secrets.token_hex(16)
        self._nonces.append(nonce)
        return f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}", algorithm=MD5'

    def check(self, method: str, header: str) -> bool:
        """True when ``header`` (an ``Authorization`` value) is a valid Digest answer."""
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "digest":
            return False
        params = parse_params(value)
        if params.get("nonce") not in self._nonces:
            return False
        if params.get("username") != self.username:
            return False
        if params.get("algorithm", "MD5").upper() != "MD5":
            return False
        ha1 = _md5(f"{self.username}:{self.realm}:{self._password}")
        ha2 = _md5(f"{method}:{params.get('uri', '')}")
        if params.get("qop"):
            expected = _md5(
                f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:"
                f"{params['qop']}:{ha2}"
            )
        else:
            expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")
        return hmac.compare_digest(expected, params.get("response", ""))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def parse_params(value: str) -> dict[str, str]:
    """``key=value`` pairs of a Digest header, quotes removed, keys lower-cased."""
    params: dict[str, str] = {}
    for part in _split_commas(value):
        key, sep, raw = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = raw.strip().strip('"')
    return params


def _split_commas(value: str) -> Iterator[str]:
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            yield "".join(current)
            current = []
        else:
            current.append(char)
    if current:
        yield "".join(current)
