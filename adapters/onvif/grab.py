"""Grab frames from a camera: a JPEG snapshot over HTTP, or a burst from a video stream.

Snapshots use aiohttp with Basic or Digest authentication, whichever the camera asks
for. Streams (HTTP MJPEG, RTSP) are read with PyAV by :mod:`adapters.onvif.stream`, in a
worker thread. Library errors become :mod:`adapters.errors`.

Callers that only judge a picture at a small size pass ``max_width``: each frame is then
shrunk in the worker thread as soon as it is decoded, so a burst holds a few small frames
instead of several full-size ones (a 1280 x 720 BGR frame is 2.7 MB). ``executor`` bounds
how many threads decode at once; without one, the event loop's default executor is used.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import cv2
import numpy as np
from numpy.typing import NDArray

from adapters.errors import AuthFailed, DeviceUnreachable, ProtocolViolation
from adapters.onvif.stream import sample_stream

logger = logging.getLogger(__name__)

Frame = NDArray[np.uint8]

#: Larger answers are not a snapshot; refusing them keeps a broken device from filling memory.
MAX_SNAPSHOT_BYTES = 20 * 1024 * 1024

_CONNECT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)


def _safe_url(url: str) -> str:
    """The URL without credentials, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _challenges(response: aiohttp.ClientResponse) -> list[str]:
    """The auth schemes a 401 answer offers, lower case, in the order given."""
    schemes = []
    for header in response.headers.getall("WWW-Authenticate", []):
        scheme = header.strip().split(" ", 1)[0].lower()
        if scheme:
            schemes.append(scheme)
    return schemes


async def _fetch(
    session: aiohttp.ClientSession,
    url: str,
    device_id: str,
    username: str | None,
    password: str | None,
) -> bytes:
    # Credentials go out only in the form the camera asks for: Digest is tried first
    # (the middleware answers a Digest challenge itself), and Basic only when the camera
    # offers nothing else, so a password is never sent in clear text needlessly.
    middlewares: tuple[aiohttp.DigestAuthMiddleware, ...] = ()
    if username is not None:
        middlewares = (aiohttp.DigestAuthMiddleware(username, password or "", preemptive=False),)
    async with session.get(url, middlewares=middlewares) as resp:
        basic_wanted = (
            resp.status == 401 and username is not None and _challenges(resp)[:1] == ["basic"]
        )
        if not basic_wanted:
            return await _body(resp, url, device_id)
    basic = aiohttp.encode_basic_auth(username or "", password or "")
    async with session.get(url, headers={"Authorization": basic}) as retry:
        return await _body(retry, url, device_id)


async def _body(resp: aiohttp.ClientResponse, url: str, device_id: str) -> bytes:
    where = _safe_url(url)
    if resp.status in (401, 403):
        raise AuthFailed(device_id, f"snapshot {where}: HTTP {resp.status}")
    if resp.status >= 500:
        raise DeviceUnreachable(device_id, f"snapshot {where}: HTTP {resp.status}")
    if resp.status != 200:
        raise ProtocolViolation(device_id, f"snapshot {where}: HTTP {resp.status}")
    if resp.content_length is not None and resp.content_length > MAX_SNAPSHOT_BYTES:
        raise ProtocolViolation(
            device_id, f"snapshot {where}: {resp.content_length} bytes is too big"
        )
    data = bytearray()
    async for chunk in resp.content.iter_chunked(65536):
        data.extend(chunk)
        if len(data) > MAX_SNAPSHOT_BYTES:
            raise ProtocolViolation(device_id, f"snapshot {where}: answer too big")
    return bytes(data)


def shrink_to_width(frame: Frame, max_width: int | None) -> Frame:
    """``frame`` averaged down (INTER_AREA) to ``max_width`` pixels wide, aspect kept.

    Frames no wider than ``max_width`` (or any frame when it is None) are returned as they are.
    """
    h, w = frame.shape[:2]
    if max_width is None or w <= max_width:
        return frame
    size = (max_width, max(1, round(h * max_width / w)))
    return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), np.uint8)


def _decode(data: bytes, max_width: int | None = None) -> Frame | None:
    buf = np.frombuffer(data, np.uint8)
    if buf.size == 0:
        return None
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return None if img is None else shrink_to_width(np.asarray(img, np.uint8), max_width)


async def fetch_snapshot(
    url: str,
    *,
    device_id: str,
    username: str | None = None,
    password: str | None = None,
    # The per-device budget is part of the call, applied with asyncio.timeout inside.
    timeout: float = 10.0,  # noqa: ASYNC109
    session: aiohttp.ClientSession | None = None,
) -> bytes:
    """Fetch one snapshot and return the exact bytes the camera sent (evidence keeps them).

    Raises ``AuthFailed`` when the camera rejects the credentials, ``DeviceUnreachable``
    when it does not answer in ``timeout`` seconds or fails (HTTP 5xx), and
    ``ProtocolViolation`` for an invalid URL or a refused request.
    """
    where = _safe_url(url)
    try:
        async with asyncio.timeout(timeout):
            if session is None:
                async with aiohttp.ClientSession() as own:
                    return await _fetch(own, url, device_id, username, password)
            return await _fetch(session, url, device_id, username, password)
    except TimeoutError as exc:
        raise DeviceUnreachable(device_id, f"snapshot {where}: no answer in {timeout:g} s") from exc
    except aiohttp.InvalidURL as exc:
        raise ProtocolViolation(device_id, f"snapshot URL is invalid: {where}") from exc
    except _CONNECT_ERRORS as exc:
        raise DeviceUnreachable(device_id, f"snapshot {where}: {exc.__class__.__name__}") from exc
    except aiohttp.ClientResponseError as exc:
        raise ProtocolViolation(device_id, f"snapshot {where}: {exc.message}") from exc


async def grab_snapshot(
    url: str,
    *,
    device_id: str,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109
    session: aiohttp.ClientSession | None = None,
    max_width: int | None = None,
    executor: Executor | None = None,
) -> Frame:
    """Fetch one snapshot (JPEG or any image OpenCV reads) and return it as a BGR array,
    shrunk to ``max_width`` if it is wider.

    Errors as :func:`fetch_snapshot`, and ``ProtocolViolation`` when the answer is not an
    image.
    """
    where = _safe_url(url)
    data = await fetch_snapshot(
        url,
        device_id=device_id,
        username=username,
        password=password,
        timeout=timeout,
        session=session,
    )
    loop = asyncio.get_running_loop()
    frame = await loop.run_in_executor(executor, _decode, data, max_width)
    if frame is None:
        raise ProtocolViolation(
            device_id, f"snapshot {where}: answer is not an image ({len(data)} bytes)"
        )
    logger.debug("%s: snapshot %s %dx%d", device_id, where, frame.shape[1], frame.shape[0])
    return frame


@dataclass(frozen=True, slots=True)
class GrabResult:
    """Frames read from a stream, with their arrival times (monotonic seconds)."""

    frames: list[Frame]
    timestamps: list[float]
    fps: float | None  # measured by adapters.onvif.stream; None when too few frames
    width: int  # of the stream, before any shrinking
    height: int


async def grab_stream_frames(
    url: str,
    *,
    device_id: str,
    n_frames: int = 10,
    duration: float = 5.0,
    open_timeout: float = 10.0,
    read_timeout: float = 5.0,
    username: str | None = None,
    password: str | None = None,
    max_width: int | None = None,
    executor: Executor | None = None,
) -> GrabResult:
    """Read up to ``n_frames`` consecutive frames, for at most about ``duration`` seconds.

    ``url`` is anything FFmpeg opens (``rtsp://``, HTTP MJPEG); read with PyAV by
    :func:`adapters.onvif.stream.sample_stream`, every frame decoded. Frames wider than
    ``max_width`` are shrunk as they are decoded (``width``/``height`` stay the stream's).
    Raises ``DeviceUnreachable`` when the stream cannot be opened or yields no frame,
    ``AuthFailed`` when it refuses the credentials.
    """
    if n_frames < 1:
        raise ValueError("n_frames must be at least 1")
    sample = await sample_stream(
        url,
        device_id=device_id,
        username=username,
        password=password,
        window_s=duration,
        decode="all",
        max_frames=n_frames,
        max_width=max_width,
        open_timeout=open_timeout,
        read_timeout=read_timeout,
        executor=executor,
    )
    if not sample.frames:
        why = f" ({sample.stalled})" if sample.stalled else ""
        raise DeviceUnreachable(device_id, f"stream {sample.url}: opened but no frame read{why}")
    w = sample.width or sample.frames[0].shape[1]
    h = sample.height or sample.frames[0].shape[0]
    return GrabResult(
        frames=sample.frames,
        timestamps=sample.arrivals,
        fps=sample.fps,
        width=w,
        height=h,
    )
