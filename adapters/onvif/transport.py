"""How the ONVIF client reads a camera's SOAP answers: up to a size cap, checked before parsing.

onvif-zeep-async reads every answer whole (``response.read()``) and zeep parses it with lxml's
``huge_tree`` and ``recover`` switched on. So a camera, or whatever else answers on its port,
could make the hub hold any amount of data, a well-formed huge answer would be parsed and
accepted, and a truncated answer is quietly "recovered" into a partial one whose only trace is
a missing field later on.

:class:`CappedONVIFCamera` therefore puts a :class:`CappedSession` in front of the aiohttp
session of every service it creates. It reads each answer in chunks and drops the connection
as soon as the answer is larger than ``max_answer_bytes``, so at most the cap plus one chunk
is held. A ``200`` answer whose root is not a SOAP 1.2 envelope is refused before zeep sees
it (zeep would refuse it too, with a less clear message). An answer that is not well-formed
XML still goes to zeep: real firmware sends stray ``&`` and control characters that the
library's recovery copes with, and refusing them would break cameras that work. Such an
answer is noted in the current :func:`watching_answers` context instead, so a probe that
fails on it can say why.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Final, Protocol

import aiohttp
from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type information
from multidict import CIMultiDictProxy
from onvif import ONVIFCamera
from yarl import URL

from adapters.errors import Violation

DEFAULT_MAX_ANSWER_BYTES: Final = 1024 * 1024
"""Far above any ONVIF answer of a camera (GetProfiles of a 4-channel encoder is ~60 KB)."""
CHUNK_BYTES: Final = 64 * 1024
SOAP12_ENVELOPE: Final = "{http://www.w3.org/2003/05/soap-envelope}Envelope"
"""Every ONVIF binding is SOAP 1.2; zeep accepts no other root."""


class AnswerRefused(Exception):
    """An answer was refused before parsing; ``violation`` says what was wrong with it."""

    def __init__(self, violation: Violation, message: str) -> None:
        super().__init__(message)
        self.violation: Violation = violation


# --- noting answers that are not well-formed -------------------------------------------------


@dataclass(slots=True)
class AnswerNotes:
    """What the transport noticed about the answers read in one :func:`watching_answers`."""

    not_xml: str | None = None
    """lxml's complaint if the latest answer was not well-formed XML, else None."""
    refusal_date: str | None = None
    """The HTTP ``Date`` header of the latest answer that was not a 200 (a refused login
    carries the camera's clock: the only one there is when the camera wants a login even to
    tell its time)."""


_NOTES: ContextVar[AnswerNotes | None] = ContextVar("onvif_answer_notes", default=None)


@contextlib.contextmanager
def watching_answers() -> Iterator[AnswerNotes]:
    """Note what is wrong with the answers read in this context (the current task)."""
    notes = AnswerNotes()
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


# --- reading and checking one answer (pure apart from the stream) ---------------------------


class ChunkReader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


async def read_capped(stream: ChunkReader, announced: int | None, limit: int) -> bytes:
    """Read an answer of at most ``limit`` bytes; more raises ``AnswerRefused("too_large")``.

    An announced length over the limit is refused before anything is read; otherwise at most
    ``limit + CHUNK_BYTES`` bytes are taken from ``stream`` (a length header may lie).
    """
    if announced is not None and announced > limit:
        raise AnswerRefused(
            "too_large", f"answer larger than {limit} bytes ({announced} announced)"
        )
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise AnswerRefused("too_large", f"answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def judge_answer(body: bytes) -> tuple[Violation, str] | None:
    """What is wrong with a ``200`` answer's XML: ``not_xml``, ``wrong_namespace``,
    ``not_soap`` (each with a short explanation), or None if it is a SOAP 1.2 envelope."""
    # No entities, no DTD, no network and libxml2's normal limits: this parse only looks.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        return "not_xml", _brief(str(exc.msg or exc))
    tag = etree.QName(root)
    if root.tag == SOAP12_ENVELOPE:
        return None
    if tag.localname == "Envelope":
        return "wrong_namespace", f"SOAP envelope in namespace {_brief(tag.namespace or '')!r}"
    return "not_soap", f"root element {_brief(str(root.tag))!r} is not a SOAP envelope"


def _brief(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the session and camera the library uses ------------------------------------------------


class CappedAnswer:
    """An aiohttp response with its body already read: what the library's transport uses."""

    def __init__(self, response: aiohttp.ClientResponse, body: bytes) -> None:
        self._response = response
        self._body = body

    async def read(self) -> bytes:
        return self._body

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._response.headers

    @property
    def charset(self) -> str | None:
        return self._response.charset

    @property
    def cookies(self) -> SimpleCookie:
        return self._response.cookies

    @property
    def method(self) -> str:
        return self._response.method

    @property
    def url(self) -> URL:
        return self._response.url


class CappedSession:
    """Stands in for one service's aiohttp session in the library's transport
    (``transport.session``): every answer is read by :func:`read_capped` and, when it is a
    ``200``, judged by :func:`judge_answer`."""

    def __init__(self, session: aiohttp.ClientSession, max_answer_bytes: int) -> None:
        self.session = session
        self.max_answer_bytes = max_answer_bytes

    @property
    def closed(self) -> bool:
        return self.session.closed

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        return self.session.timeout

    async def post(self, url: str, **kwargs: Any) -> CappedAnswer:
        return await self._answer(await self.session.post(url, **kwargs))

    async def get(self, url: str, **kwargs: Any) -> CappedAnswer:
        return await self._answer(await self.session.get(url, **kwargs))

    async def _answer(self, response: aiohttp.ClientResponse) -> CappedAnswer:
        try:
            body = await read_capped(
                response.content, response.content_length, self.max_answer_bytes
            )
        except BaseException:
            response.close()  # drop the connection: the rest of the answer is never read
            raise
        response.release()
        # Multipart (MTOM) answers are split by zeep first; error statuses keep zeep's own
        # handling (a 401 with an HTML page is an authentication failure, not a bad answer).
        if response.status != 200:
            notes = _NOTES.get()
            if notes is not None:
                notes.refusal_date = response.headers.get("Date")
        if response.status != 200 or not body or response.content_type.startswith("multipart/"):
            return CappedAnswer(response, body)
        verdict = judge_answer(body)
        notes = _NOTES.get()
        if notes is not None:
            notes.not_xml = verdict[1] if verdict and verdict[0] == "not_xml" else None
        if verdict is not None and verdict[0] != "not_xml":
            raise AnswerRefused(*verdict)
        return CappedAnswer(response, body)


class CappedONVIFCamera(ONVIFCamera):  # type: ignore[misc]  # onvif ships no type information
    """``ONVIFCamera`` whose services read answers through a :class:`CappedSession`.

    Services are created by the library itself too (``update_xaddrs``, event managers), so
    the session is put in place where every service is made, before its first request.
    """

    def __init__(
        self, *args: Any, max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_answer_bytes = max_answer_bytes
        self._creating: set[asyncio.Task[Any]] = set()

    async def create_onvif_service(self, *args: Any, **kwargs: Any) -> Any:
        # The library opens a service's HTTP session first and keeps the service (so that
        # close() finds it) only once its set-up is done; the set-up parses the WSDL, which
        # takes seconds the first time on a small machine. A caller that gives up during it
        # (a connect or linkage timeout) would leave the session open for ever. So the
        # creation is a task of its own that always runs to its end (set-up is local work,
        # no network), shielded from the caller's cancellation, and close() waits for it.
        creation = asyncio.get_running_loop().create_task(
            super().create_onvif_service(*args, **kwargs), name="onvif-create-service"
        )
        self._creating.add(creation)
        creation.add_done_callback(self._creating.discard)
        service = await asyncio.shield(creation)
        transport = service.transport
        if not isinstance(transport.session, CappedSession):
            transport.session = CappedSession(transport.session, self.max_answer_bytes)
        return service

    async def close(self) -> None:
        """Close every service's session: those there are at once (a caller's timeout may
        cut what follows), then those still being created, once they exist."""
        creating = set(self._creating)
        await super().close()
        if creating:
            done, _ = await asyncio.wait(creating)
            for creation in done:
                if not creation.cancelled() and creation.exception() is None:
                    await creation.result().close()
