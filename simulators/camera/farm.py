"""Many simulated cameras in one process, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

from simulators.camera.device import SimCamera
from simulators.camera.model import (
    CameraConfig,
)

log = logging.getLogger(__name__)


class CameraFarm:
    """N simulated cameras in one process, started and stopped together.

    >>> async with CameraFarm.uniform(3, username="u", password="p") as farm:
    ...     farm[0].port, farm[0].set_faults(["offline"])
    """

    def __init__(self, configs: Sequence[CameraConfig]) -> None:
        self.cameras = [SimCamera(config) for config in configs]

    @classmethod
    def uniform(
        cls,
        count: int,
        *,
        username: str,
        password: str,
        host: str = "127.0.0.1",
        base_port: int = 0,
        rtsp_base_port: int = 0,
        name_prefix: str = "cam",
        faults: Iterable[str] = (),
        **overrides: Any,
    ) -> CameraFarm:
        """``count`` alike cameras; ports ``base_port + i`` and ``rtsp_base_port + i`` (or
        all chosen by the OS where 0)."""
        fault_set = frozenset(faults)
        configs = [
            CameraConfig(
                name=f"{name_prefix}{i + 1:03d}",
                username=username,
                password=password,
                host=host,
                port=base_port + i if base_port else 0,
                rtsp_port=rtsp_base_port + i if rtsp_base_port else 0,
                faults=fault_set,
                seed=i,
                **overrides,
            )
            for i in range(count)
        ]
        return cls(configs)

    def __len__(self) -> int:
        return len(self.cameras)

    def __getitem__(self, index: int) -> SimCamera:
        return self.cameras[index]

    def __iter__(self) -> Iterator[SimCamera]:
        return iter(self.cameras)

    async def __aenter__(self) -> Self:
        started: list[SimCamera] = []
        try:
            for camera in self.cameras:
                await camera.start()
                started.append(camera)
        except BaseException:
            for camera in started:
                await camera.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.gather(*(camera.stop() for camera in self.cameras))
