"""The SOAP 1.2 / WS-Security core of the camera simulator: pure functions, no I/O.

Written independently of any ONVIF client library on purpose: the simulator must follow the
wire format, not the driver's idea of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "tt": "http://www.onvif.org/ver10/schema",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tmd": "http://www.onvif.org/ver10/deviceIO/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "ter": "http://www.onvif.org/ver10/error",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
TNS1 = "http://www.onvif.org/ver10/topics"
TOPIC_DIALECT = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"

for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)


def q(prefix: str, local: str) -> str:
    """Clark notation ``{namespace}local`` for a known prefix."""
    return f"{{{NS[prefix]}}}{local}"


def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """Append a child element; ``tag`` is ``prefix:local``."""
    prefix, local = tag.split(":", 1)
    child = ET.SubElement(parent, q(prefix, local), attrs)
    if text is not None:
        child.text = text
    return child


class SoapRequestError(Exception):
    """The request is not a SOAP envelope this simulator understands."""


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """One parsed request: its header, body operation element, operation name and namespace."""

    header: ET.Element | None
    operation: ET.Element
    name: str
    namespace: str


def parse_request(data: bytes) -> SoapRequest:
    """Parse a SOAP 1.2 request envelope; raise ``SoapRequestError`` on anything else."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SoapRequestError(f"not XML: {exc}") from exc
    if root.tag != q("s", "Envelope"):
        raise SoapRequestError(f"not a SOAP 1.2 envelope: {root.tag}")
    body = root.find(q("s", "Body"))
    if body is None or len(body) == 0:
        raise SoapRequestError("empty SOAP body")
    operation = body[0]
    namespace, _, name = operation.tag[1:].partition("}")
    return SoapRequest(root.find(q("s", "Header")), operation, name, namespace)


def child_text(element: ET.Element | None, local: str) -> str | None:
    """Text of the first direct child with this local name, any namespace."""
    if element is None:
        return None
    for child in element:
        if child.tag.rpartition("}")[2] == local:
            return (child.text or "").strip()
    return None


def find_local(element: ET.Element | None, local: str) -> ET.Element | None:
    """First descendant (depth-first) with this local name, any namespace."""
    if element is None:
        return None
    for node in element.iter():
        if node.tag.rpartition("}")[2] == local:
            return node
    return None


def _strip_declaration(data: bytes) -> bytes:
    return data.split(b"?>", 1)[1] if data.startswith(b"<?xml") else data


def serialise(env: ET.Element) -> bytes:
    """Serialise an element tree with an XML declaration."""
    raw = _strip_declaration(ET.tostring(env, encoding="utf-8"))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + raw.lstrip()


def response(body_content: ET.Element | None) -> bytes:
    """A SOAP 1.2 response envelope with one body element."""
    env = ET.Element(q("s", "Envelope"))
    body = ET.SubElement(env, q("s", "Body"))
    if body_content is not None:
        body.append(body_content)
    return serialise(env)


def fault(code: str, subcode: str | None, reason: str) -> bytes:
    """A SOAP 1.2 fault: code ``Sender``/``Receiver``, subcode e.g. ``ter:NotAuthorized``.

    The subcode is a QName in element text, so its prefix must be declared on the fault itself:
    a serialiser only declares prefixes it sees in tags.
    """
    env = ET.Element(q("s", "Envelope"))
    body = ET.SubElement(env, q("s", "Body"))
    flt = ET.SubElement(body, q("s", "Fault"))
    flt.set("xmlns:ter", NS["ter"])
    flt.set("xmlns:wsrf-rw", "http://docs.oasis-open.org/wsrf/rw-2")
    code_el = sub(flt, "s:Code")
    sub(code_el, "s:Value", f"s:{code}")
    if subcode is not None:
        subcode_el = sub(code_el, "s:Subcode")
        sub(subcode_el, "s:Value", subcode)
    reason_el = sub(flt, "s:Reason")
    text = sub(reason_el, "s:Text", reason)
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    return serialise(env)


# --- hostile answers (fault switches of the simulator) --------------------------------------

WRONG_NAMESPACE = "urn:mallsim:not-an-onvif-namespace"


def malformed(body: bytes) -> bytes:
    """A response cut off half-way and left unclosed: not well-formed XML."""
    return body[: max(len(body) // 2, 1)] + b"<tds:Broken attr='"


def wrong_namespace(body: bytes) -> bytes:
    """The same response with every SOAP and ONVIF namespace replaced by a foreign one."""
    out = body
    for uri in (NS["s"], NS["tds"], NS["trt"], NS["tt"], NS["tev"], NS["tptz"], NS["tmd"]):
        out = out.replace(uri.encode(), WRONG_NAMESPACE.encode())
    return out


def padded(body: bytes, size: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """The same response, still well-formed, grown to ``size`` bytes by an XML comment at the
    start of its body (a parser reads the whole comment and then drops it). Made in chunks of
    ``chunk`` bytes, so the answer is never held whole."""
    marker = body.find(b"<s:Body>")
    at = marker + len(b"<s:Body>") if marker >= 0 else len(body)
    yield body[:at] + b"<!--"
    yield from _filler(size - len(body) - len(b"<!---->"), chunk)
    yield b"-->" + body[at:]


def unterminated(body: bytes, size: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """The opening of a response up to its first body element, then one element whose text
    never ends: ``max(size, opening)`` bytes in all (see :func:`unterminated_size`), in chunks."""
    head = _unterminated_head(body)
    yield head
    yield from _filler(size - len(head), chunk)


def unterminated_size(body: bytes, size: int) -> int:
    return max(size, len(_unterminated_head(body)))


def _unterminated_head(body: bytes) -> bytes:
    return huge_prefix(body) + b"<tds:Junk>"


def _filler(n: int, chunk: int) -> Iterator[bytes]:
    while n > 0:
        k = min(chunk, n)
        yield b"A" * k
        n -= k


def huge_prefix(body: bytes) -> bytes:
    """The opening of a response up to its first body element: what a huge answer starts with."""
    marker = body.find(b"<s:Body>")
    return body[: marker + len(b"<s:Body>")] if marker >= 0 else body[:64]


# --- WS-Security UsernameToken -------------------------------------------------------------

PASSWORD_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """``Base64(SHA1(nonce + created + password))`` as defined by the UsernameToken profile."""
    return base64.b64encode(
        hashlib.sha1(nonce + created.encode() + password.encode()).digest()
    ).decode()


def check_username_token(
    header: ET.Element | None,
    username: str,
    password: str,
    now: datetime,
    window: timedelta,
) -> str | None:
    """Verify a digest UsernameToken; return None if valid, else the reason it is not.

    ``now`` is the camera's own clock: like real cameras, a token whose Created time is further
    than ``window`` from it is rejected even with the right password.
    """
    token = find_local(header, "UsernameToken")
    if token is None:
        return "no UsernameToken"
    user = child_text(token, "Username")
    pw_el = next((c for c in token if c.tag.endswith("}Password")), None)
    nonce_b64 = child_text(token, "Nonce")
    created = child_text(token, "Created")
    if pw_el is None or nonce_b64 is None or created is None:
        return "incomplete UsernameToken"
    if pw_el.get("Type", PASSWORD_DIGEST) != PASSWORD_DIGEST:
        return "only PasswordDigest is accepted"
    try:
        nonce = base64.b64decode(nonce_b64, validate=True)
        created_at = parse_datetime(created)
    except ValueError:
        return "malformed Nonce or Created"
    expected = password_digest(nonce, created, password)
    # Compare user and digest in constant time, both always evaluated.
    user_ok = hmac.compare_digest((user or "").encode(), username.encode())
    digest_ok = hmac.compare_digest((pw_el.text or "").strip().encode(), expected.encode())
    if not (user_ok and digest_ok):
        return "wrong username or password"
    if abs(created_at - now) > window:
        return "Created is outside the allowed clock window"
    return None


# --- times --------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: str) -> timedelta:
    """Parse the xs:duration subset cameras use (``PT600S``, ``PT1M``, ``P1DT2H``)."""
    match = _DURATION.match(value.strip())
    if match is None or value.strip() in ("P", "PT"):
        raise ValueError(f"unsupported duration {value!r}")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def parse_datetime(value: str) -> datetime:
    """Parse xs:dateTime; a value without a zone is taken as UTC."""
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_termination(value: str | None, now: datetime, default: timedelta) -> datetime:
    """A WS-BaseNotification termination time: relative duration or absolute dateTime."""
    if not value:
        return now + default
    value = value.strip()
    if value.startswith("P"):
        return now + parse_duration(value)
    return parse_datetime(value)


def format_datetime(value: datetime, *, zulu: bool = True) -> str:
    """xs:dateTime in UTC; ``zulu=False`` imitates cameras that omit the zone designator."""
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    return text + "Z" if zulu else text
