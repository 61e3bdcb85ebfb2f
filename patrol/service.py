"""The patrol service put together: NATS, the store, the stream, the workers, the web app.

``PatrolService(config, workers=True, web=True)`` is an async context manager. Entering
it connects to the cluster (any node; the client follows the cluster through failures),
opens the store, makes sure the stream exists, rebuilds the view of every mall from the
retained messages, then starts ``config.workers`` consumers and, when asked, the web app.
Deployments run workers and web apps as separate processes (``mallhub patrol worker`` /
``mallhub patrol web``) on as many machines as needed; ``mallhub patrol run`` does both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js.errors import Error as JsError

from patrol.config import PatrolConfig, metrics_token
from patrol.consumer import ConsumerStats, Worker, ensure_stream
from patrol.inspector import run_inspector
from patrol.metrics import PatrolMetrics
from patrol.models import open_store
from patrol.retained import rebuild_from_retained
from patrol.store import PatrolStore
from patrol.web import WebApp
from patrol.webbase import State

log = logging.getLogger(__name__)
START_ERRORS = (NatsError, JsError, OSError, TimeoutError)
"""What a start step meets while a node dies or the cluster elects its leaders."""
START_RETRY_MIN_S = 0.2
START_RETRY_MAX_S = 3.0
# nats-py reports every reconnect attempt as an error; the service says what matters itself.
logging.getLogger("nats").setLevel(logging.CRITICAL)


class NatsTlsError(ConnectionError):
    """The first connection to NATS failed its TLS handshake: a setting to fix
    (``nats.tls``, the servers' certificates), not an outage to wait out. (nats-py 2.16 does
    not move on to the next server after a failed handshake either: closing the failed
    connection never returns.)"""


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    return exc.reason or str(exc)


async def connect_nats(config: PatrolConfig, name: str = "patrol") -> NatsClient:
    """Connect to any of ``config.nats.servers``. Nodes that are down are waited for; a
    failed TLS handshake raises ``NatsTlsError``."""
    n = config.nats
    kwargs: dict[str, Any] = {"reconnect_time_wait": 0.5}
    if n.username:
        kwargs["user"] = n.username
        kwargs["password"] = n.password.get_secret_value() if n.password else ""
    if n.tls is not None or any(s.startswith("tls://") for s in n.servers):
        ctx = ssl.create_default_context(
            cafile=str(n.tls.ca_file) if n.tls and n.tls.ca_file else None
        )
        if n.tls and n.tls.cert_file and n.tls.key_file:
            ctx.load_cert_chain(str(n.tls.cert_file), str(n.tls.key_file))
        kwargs["tls"] = ctx

    tls_failed: asyncio.Future[ssl.SSLError] = asyncio.get_running_loop().create_future()

    async def on_error(exc: Exception) -> None:
        log.debug("nats: %s", exc)
        if isinstance(exc, ssl.SSLError) and not tls_failed.done():
            tls_failed.set_result(exc)

    async def on_disconnect() -> None:
        log.debug("nats: disconnected")

    async def on_reconnect() -> None:
        log.info("nats: reconnected to %s", nc.connected_url.netloc if nc.connected_url else "?")

    nc = NatsClient()
    connecting = asyncio.ensure_future(
        nc.connect(
            servers=list(n.servers),
            name=name,
            max_reconnect_attempts=-1,
            connect_timeout=5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            **kwargs,
        )
    )
    try:
        first: set[asyncio.Future[Any]] = {connecting, tls_failed}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, *START_ERRORS):
                await connecting
    if not connecting.cancelled():
        connecting.result()
        return nc
    with contextlib.suppress(*START_ERRORS):
        await nc.close()
    raise NatsTlsError(
        f"TLS to NATS failed ({_tls_reason(tls_failed.result())}); "
        "check nats.tls.ca_file and the servers' certificates"
    )


class PatrolService:
    def __init__(
        self,
        config: PatrolConfig,
        *,
        workers: int | None = None,
        web: bool = True,
        http_port: int | None = None,
        rebuild: bool = True,
    ) -> None:
        self.config = config
        self.n_workers = config.workers if workers is None else workers
        self.with_web = web
        self.http_port = config.http.port if http_port is None else http_port
        self.rebuild = rebuild
        self.stats = ConsumerStats()
        self.nc: NatsClient | None = None
        self.store: PatrolStore | None = None
        self.web: WebApp | None = None
        self.metrics: PatrolMetrics | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.start_retries = 0
        """Start steps that failed on the cluster and were tried again."""
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def _start(self) -> None:
        engine = await open_store(self.config.database_url.get_secret_value())
        self._stack.push_async_callback(engine.dispose)
        self.store = PatrolStore(engine)
        self.nc = await connect_nats(self.config)
        self._stack.push_async_callback(self.nc.close)
        js = self.nc.jetstream()
        nc, store = self.nc, self.store
        await self._until_done("stream", lambda: ensure_stream(js, self.config))
        if self.rebuild:
            await self._until_done("retained", lambda: rebuild_from_retained(nc, store))
        for i in range(self.n_workers):
            w = Worker(self.config, self.store, self.nc, name=f"worker-{i + 1}", stats=self.stats)
            self._tasks.append(asyncio.create_task(w.run(), name=f"patrol-worker-{i + 1}"))
        if self.n_workers:
            # Processes with workers also keep the inspection workflow's clock.
            self._tasks.append(
                asyncio.create_task(
                    run_inspector(self.config, self.store, self.nc), name="patrol-inspector"
                )
            )
        # The counters served are those of this process's workers (none in a web-only one).
        self.metrics = PatrolMetrics(
            self.store.engine,
            self.stats,
            workers=self.n_workers,
            known_sites=[m.site_id for m in self.config.malls],
        )
        if self.with_web:
            token = metrics_token(self.config)
            if self.config.metrics_token_env is not None and token is None:
                log.error(
                    "/metrics is off: %s is unset or too short", self.config.metrics_token_env
                )
            state = State(
                self.config, self.store, self.nc, metrics=self.metrics, metrics_token=token
            )
            self.web = await self._stack.enter_async_context(
                WebApp(state, self.config.http.host, self.http_port)
            )

    async def _until_done(self, what: str, step: Callable[[], Awaitable[object]]) -> None:
        """Run a start step that needs the cluster until it succeeds, as a running worker
        retries a fetch: a node dying now, or a cluster still electing its leaders, costs a
        wait (the client moves to another node meanwhile), never the process."""
        delay = START_RETRY_MIN_S
        while True:
            try:
                await step()
                return
            except START_ERRORS as exc:
                self.start_retries += 1
                log.log(
                    logging.WARNING if self.start_retries % 10 == 1 else logging.DEBUG,
                    "start: %s not ready (%s: %s); retrying",
                    what,
                    type(exc).__name__,
                    str(exc)[:120],
                )
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, START_RETRY_MAX_S)

    async def _stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await self._stack.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()
