"""The camera's RTSP server: sessions over TCP (interleaved) or UDP, paced by the RTP clock.

One ``RtspServer`` per camera, on its own port. Requests: OPTIONS, DESCRIBE, SETUP, PLAY,
PAUSE, GET_PARAMETER (keep-alive), TEARDOWN; every request but OPTIONS needs Digest
credentials. A session that hears nothing from its client (no request, no RTCP) for
``session_timeout_s`` is ended, as cameras do.

Pictures come from shared encoded loops (``video_loop``), sent by ``rtp_session``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from simulators.camera import video_loop
from simulators.camera.rtp_session import Session, StreamOwner
from simulators.camera.rtsp_protocol import (
    MAX_BODY,
    MAX_HEADER_LINES,
    MAX_LINE,
    METHODS,
    Request,
    RtspSyntaxError,
    parse_header_line,
    parse_request_line,
    parse_transport,
    response,
    sdp,
)
from simulators.camera.video_loop import LoopKey

log = logging.getLogger(__name__)


class RtspServer:
    """RTSP for one camera. ``start`` binds (port 0: any free port); ``port`` tells which."""

    def __init__(
        self, owner: StreamOwner, host: str, port: int, session_timeout_s: float = 60.0
    ) -> None:
        self.owner = owner
        self.host = host
        self.port = port
        self.session_timeout_s = session_timeout_s
        self.sessions: dict[str, Session] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        """Connection handlers, ended by ``stop`` (one may be waiting for a loop's encoding)."""
        self._reaper: asyncio.Task[None] | None = None
        self._listener_change: asyncio.Task[None] | None = None
        self._switches: set[asyncio.Task[None]] = set()

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        await self._listen()
        self._reaper = asyncio.create_task(self._reap(), name=f"rtsp-reaper-{self.owner.name}")

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=MAX_LINE * 2
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def sync_listener(self) -> None:
        """Open or close the listening socket to follow the ``rtsp_refused`` fault."""
        want = "rtsp_refused" not in self.owner.faults

        async def change() -> None:
            with contextlib.suppress(OSError):
                await (self._listen() if want else self._unlisten())

        previous = self._listener_change

        async def after_previous() -> None:
            if previous is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await previous
            await change()

        self._listener_change = asyncio.get_running_loop().create_task(after_previous())

    async def settled(self) -> None:
        """Wait until a listener change asked for by ``sync_listener`` is done."""
        if self._listener_change is not None:
            await self._listener_change

    async def stop(self) -> None:
        if self._listener_change is not None:
            self._listener_change.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener_change
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in list(self._switches):
            task.cancel()
        for session in list(self.sessions.values()):
            session.close()
        for writer in list(self._writers):
            writer.transport.abort()
        handlers = [t for t in self._handlers if t is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._unlisten()

    def refresh_pictures(self) -> None:
        """Move playing sessions to the loop the current faults call for."""
        for session in list(self.sessions.values()):
            key = self.owner.stream_key(session.profile)
            if key is None or session.video is None or session.video.key == key:
                continue
            video = video_loop.cached(key)
            if video is not None:
                session.switch(video)
            else:
                # Held until done (the loop keeps only weak references to tasks).
                task = asyncio.get_running_loop().create_task(self._switch_later(session, key))
                self._switches.add(task)
                task.add_done_callback(self._switches.discard)

    async def _switch_later(self, session: Session, key: LoopKey) -> None:
        video = await asyncio.to_thread(video_loop.get, key)
        if not session.closed and self.owner.stream_key(session.profile) == key:
            session.switch(video)

    async def _reap(self) -> None:
        period = max(0.2, min(5.0, self.session_timeout_s / 4))
        while True:
            await asyncio.sleep(period)
            for session in list(self.sessions.values()):
                if session.expired:
                    log.debug("%s: RTSP session %s timed out", self.owner.name, session.id)
                    session.close()
                    if session.transport.tcp:
                        session.writer.close()

    def _forget(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        if not self.sessions:
            self._idle.set()

    async def sessions_gone(self) -> None:
        """Wait until no session is left (ended by TEARDOWN, time-out or disconnect)."""
        await self._idle.wait()

    # --- connections -----------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if "offline" in self.owner.faults:
            writer.transport.abort()
            return
        self._writers.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        owned: list[Session] = []
        try:
            while True:
                request = await self._read(reader, owned)
                if request is None:
                    break
                self.requests += 1
                answer, keep_open = await self._answer(request, writer, owned)
                writer.write(answer)
                if not keep_open:
                    break
        except (RtspSyntaxError, asyncio.LimitOverrunError, ValueError) as exc:
            # Not RTSP, or lines and headers past every limit: say so once and hang up.
            log.debug("%s: bad RTSP request: %s", self.owner.name, exc)
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(response(400, ""))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.debug("%s: RTSP connection ended: %s", self.owner.name, exc)
        finally:
            self._writers.discard(writer)
            if handler is not None:
                self._handlers.discard(handler)
            # Sessions whose packets travel on this connection end with it.
            for session in owned:
                if session.transport.tcp:
                    session.close()
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    async def _read(self, reader: asyncio.StreamReader, owned: list[Session]) -> Request | None:
        while True:
            first = await reader.read(1)
            if not first:
                return None
            if first == b"$":
                # Interleaved data from the client (RTCP receiver reports): proof of life.
                head = await reader.readexactly(3)
                await reader.readexactly(int.from_bytes(head[1:3], "big"))
                for session in owned:
                    session.touch()
                continue
            if first in b"\r\n":
                continue
            break
        line = first + await reader.readuntil(b"\n")
        method, uri, version = parse_request_line(line.decode("utf-8", "replace"))
        request = Request(method, uri, version)
        for _ in range(MAX_HEADER_LINES + 1):
            raw = (await reader.readuntil(b"\n")).decode("utf-8", "replace").strip()
            if not raw:
                break
            name, value = parse_header_line(raw)
            request.headers[name] = value
        else:
            raise RtspSyntaxError("too many header lines")
        length = request.header("content-length")
        if length:
            size = int(length) if length.isdigit() else -1
            if not 0 <= size <= MAX_BODY:
                raise RtspSyntaxError("bad Content-Length")
            request.body = await reader.readexactly(size)
        return request

    async def _answer(
        self, request: Request, writer: asyncio.StreamWriter, owned: list[Session]
    ) -> tuple[bytes, bool]:
        cseq = request.cseq
        if request.version != "RTSP/1.0":
            return response(505, cseq), False
        faults = self.owner.faults
        if {"auth_failure", "rtsp_unauthorized"} & faults or (
            request.method != "OPTIONS"
            and not self.owner.digest.check(request.method, request.header("authorization"))
        ):
            return response(401, cseq, {"WWW-Authenticate": self.owner.digest.challenge()}), True
        session = self.sessions.get(request.session_id) if request.session_id else None
        if session is not None:
            session.touch()
        if request.method == "OPTIONS":
            return response(200, cseq, {"Public": ", ".join(METHODS)}), True
        if request.method not in METHODS:
            return response(405, cseq, {"Allow": ", ".join(METHODS)}), True
        if request.session_id and session is None and request.method != "DESCRIBE":
            return response(454, cseq), True
        if request.method == "GET_PARAMETER":
            return response(200, cseq, self._session_header(session)), True
        if request.method == "TEARDOWN":
            if session is not None:
                session.close()
            return response(200, cseq), True
        if "rtsp_unavailable" in faults:
            return response(503, cseq), True
        if request.method == "DESCRIBE":
            return await self._describe(request), True
        if request.method == "SETUP":
            return await self._setup(request, writer, owned), True
        if session is None:
            return response(454, cseq), True
        if request.method == "PAUSE":
            session.pause()
            return response(200, cseq, self._session_header(session)), True
        return await self._play(request, session), True

    def _session_header(self, session: Session | None) -> dict[str, str]:
        if session is None:
            return {}
        return {"Session": f"{session.id};timeout={int(self.session_timeout_s)}"}

    def _profile(self, uri: str) -> str:
        parts = [p for p in urlsplit(uri).path.split("/") if p]
        return parts[0] if parts else ""

    async def _describe(self, request: Request) -> bytes:
        profile = self._profile(request.uri)
        key = self.owner.stream_key(profile)
        if key is None:
            return response(404, request.cseq)
        video = await asyncio.to_thread(video_loop.get, key)
        # The media lines describe what is really sent (a player needs the true codec);
        # only the frame rate is the configured one, as cameras announce it.
        codec, width, height = video.key.codec, video.key.width, video.key.height
        fps = self.owner.declared(profile)[3]
        host = urlsplit(request.uri).hostname or self.host
        body = sdp(
            session_id=secrets.randbits(31),
            host=host,
            title=f"{self.owner.name} {profile}",
            codec=codec,
            fmtp=video.fmtp(),
            fps=fps,
            width=width,
            height=height,
        )
        base = request.uri.rstrip("/") + "/"
        headers = {"Content-Base": base, "Content-Type": "application/sdp"}
        return response(200, request.cseq, headers, body)

    async def _setup(
        self, request: Request, writer: asyncio.StreamWriter, owned: list[Session]
    ) -> bytes:
        profile = self._profile(request.uri)
        if self.owner.stream_key(profile) is None:
            return response(404, request.cseq)
        if request.session_id:
            return response(459, request.cseq)  # one track per stream: nothing to aggregate
        transport = parse_transport(request.header("transport"))
        if transport is None:
            return response(461, request.cseq)
        session = Session(self.owner, profile, transport, writer, self.session_timeout_s)
        if transport.tcp:
            a, b = transport.channels
            reply = f"RTP/AVP/TCP;unicast;interleaved={a}-{b};ssrc={session.ssrc:08X};mode=play"
        else:
            peer = writer.get_extra_info("peername")
            try:
                rtp_port, rtcp_port = await session.open_udp(self.host, str(peer[0]))
            except OSError:
                session.close()
                return response(503, request.cseq)
            a, b = transport.client_ports
            reply = (
                f"RTP/AVP;unicast;client_port={a}-{b};server_port={rtp_port}-{rtcp_port};"
                f"ssrc={session.ssrc:08X};mode=play"
            )
        session.on_close = self._forget
        self.sessions[session.id] = session
        self._idle.clear()
        owned.append(session)
        headers = {"Transport": reply, **self._session_header(session)}
        return response(200, request.cseq, headers)

    async def _play(self, request: Request, session: Session) -> bytes:
        key = self.owner.stream_key(session.profile)
        if key is None:
            return response(404, request.cseq)
        video = await asyncio.to_thread(video_loop.get, key)
        if session.closed:
            return response(454, request.cseq)
        seq, rtptime = session.play(video, self.owner.play_options())
        base = request.uri.rstrip("/")
        if not base.endswith("trackID=1"):
            base += "/trackID=1"
        headers = {
            "Range": "npt=0.000-",
            "RTP-Info": f"url={base};seq={seq};rtptime={rtptime}",
            **self._session_header(session),
        }
        return response(200, request.cseq, headers)
