"""SIP as the simulated paging endpoint reads and writes it: messages, responses, digest
checking, the audio payload types an SDP offer lists.

Written here independently of the drivers, so that a bug in a driver cannot hide behind the
same bug in this fake.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

log = logging.getLogger(__name__)


COMPACT_HEADERS: Final = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
}


@dataclass
class SipMsg:
    first_line: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def is_request(self) -> bool:
        return not self.first_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        return self.first_line.split(" ", 1)[0].upper()

    @property
    def uri(self) -> str:
        return self.first_line.split(" ")[1]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


def parse_sip(data: bytes) -> SipMsg:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in " \t" and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers.append((COMPACT_HEADERS.get(key, key), value.strip()))
    msg = SipMsg(lines[0].strip(), headers, body)
    length = msg.header("content-length")
    if length is not None:
        msg.body = body[: int(length)]
    return msg


def header_param(value: str, name: str) -> str | None:
    match = re.search(rf";\s*{name}=([^;>\s,]+)", value, re.IGNORECASE)
    return match.group(1) if match else None


def build_response(
    request: SipMsg,
    code: int,
    reason: str,
    *,
    to_tag: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    lines = [f"SIP/2.0 {code} {reason}"]
    lines += [f"Via: {v}" for v in request.all("via")]
    to = request.header("to") or ""
    if to_tag and header_param(to, "tag") is None:
        to += f";tag={to_tag}"
    lines += [
        f"From: {request.header('from')}",
        f"To: {to}",
        f"Call-ID: {request.header('call-id')}",
        f"CSeq: {request.header('cseq')}",
        "Server: mallsim-paging",
    ]
    lines += [f"{k}: {v}" for k, v in extra]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def auth_params(value: str) -> dict[str, str]:
    return {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', value)
    }


def check_digest(
    header: str | None,
    *,
    method: str,
    username: str,
    password: str,
    realm: str,
    nonces: set[str],
) -> bool:
    """Whether an ``Authorization: Digest`` header answers one of our nonces correctly."""
    if not header or not header.lower().startswith("digest "):
        return False
    p = auth_params(header[7:])
    if p.get("username") != username or p.get("realm") != realm or p.get("nonce") not in nonces:
        return False
    ha1 = md5_hex(f"{username}:{realm}:{password}")
    ha2 = md5_hex(f"{method}:{p.get('uri', '')}")
    if p.get("qop"):
        expected = md5_hex(
            f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p['qop']}:{ha2}"
        )
    else:
        expected = md5_hex(f"{ha1}:{p['nonce']}:{ha2}")
    return secrets.compare_digest(expected, p.get("response", ""))


def offered_payload_types(sdp: bytes) -> list[int]:
    for line in sdp.decode("utf-8", "replace").splitlines():
        if line.startswith("m=audio "):
            return [int(f) for f in line.split()[3:] if f.isdigit()]
    return []
