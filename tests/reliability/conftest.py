"""The reliability suite's size and its secret scan.

Size: ``--reliability-scale S`` (or ``MALLHUB_RELIABILITY_SCALE``) multiplies every burst,
outage and fuzz count. 1.0 is the full size of the acceptance (10,000-event bursts, a 2-minute
link cut, 100,000 fuzzed frames); the default 0.2 is what CI runs. The option is read when
pytest is pointed at this folder (``pytest tests/reliability --reliability-scale 1``); the
environment variable works from anywhere.

Secrets: every test here registers the secrets it configures and the texts the hub produced
(its log file, every MQTT payload); at teardown none of them may contain a secret, and neither
may any log record emitted in this process during the test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulators.police import PolicePlatform

DEFAULT_SCALE = 0.2
ENV = "MALLHUB_RELIABILITY_SCALE"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-scale",
        type=float,
        default=None,
        help=f"size of the reliability suite: 1.0 = full acceptance size (default {DEFAULT_SCALE})",
    )


@dataclass(frozen=True)
class Scale:
    factor: float

    def count(self, full: int, minimum: int = 1) -> int:
        """``full`` at scale 1.0, scaled, never below ``minimum``."""
        return max(minimum, round(full * self.factor))

    def seconds(self, full: float, minimum: float = 1.0) -> float:
        return max(minimum, full * self.factor)


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    opt = None
    try:
        opt = request.config.getoption("--reliability-scale")
    except ValueError:
        opt = None  # the option is registered only when pytest starts in this folder
    if opt is None:
        opt = float(os.environ.get(ENV, DEFAULT_SCALE))
    return Scale(float(opt))


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a broken record is not ours to judge here
            self.lines.append(str(record.msg))


@dataclass
class SecretScan:
    """Secrets in play and the places they must never show up."""

    secrets: set[str] = field(default_factory=set)
    sources: list[tuple[str, Callable[[], Iterable[str]]]] = field(default_factory=list)

    def secret(self, value: str) -> str:
        """Register ``value`` as a secret and return it."""
        self.secrets.add(value)
        return value

    def file(self, path: Path) -> None:
        """Scan this file (e.g. a hub process's log) at the end of the test."""
        self.sources.append(
            (str(path), lambda: [path.read_text(errors="replace")] if path.exists() else [])
        )

    def police(self, police: PolicePlatform) -> None:
        """Scan every MQTT payload this platform received."""
        self.sources.append(("MQTT", lambda: [repr(r.body) for r in police.received]))

    def texts(self, where: str, get: Callable[[], Iterable[str]]) -> None:
        self.sources.append((where, get))

    def check(self, log_lines: list[str]) -> None:
        found: list[str] = []
        everything = [("log", log_lines), *((w, list(get())) for w, get in self.sources)]
        for where, texts in everything:
            for text in texts:
                for s in self.secrets:
                    if s and s in text:
                        found.append(f"a secret appears in {where}")
        # Never print the secret itself: only where it was found.
        assert not found, sorted(set(found))


@pytest.fixture
def secrets() -> Iterator[SecretScan]:
    scan = SecretScan()
    capture = _Capture()
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    ours = [logging.getLogger(n) for n in ("hub", "adapters", "simulators")]
    old = [(lg, lg.level) for lg in (root, *ours)]
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    for lg in ours:  # the project's own debug lines too, not every library's
        lg.setLevel(logging.DEBUG)
    try:
        yield scan
    finally:
        root.removeHandler(capture)
        for lg, level in old:
            lg.setLevel(level)
    scan.check(capture.lines)
