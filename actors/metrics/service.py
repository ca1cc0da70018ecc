"""The controller's metrics: the history fold, ``/metrics``, and the mirror into Ray."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence

from nats.js import JetStreamContext
from prometheus_client.core import Metric

from actorflow.actors.config import EngineConfig
from actorflow.actors.functions.pools import PoolStatus
from actorflow.actors.metrics.families import Gauges, families
from actorflow.actors.metrics.ray_export import RayMirror
from actorflow.actors.metrics.server import MetricsServer
from actorflow.actors.metrics.tail import HistoryTail

log = logging.getLogger(__name__)

#: How often the figures are copied into `ray.util.metrics` (Ray exports every ~10 s).
_MIRROR_EVERY = 5.0


class MetricsService:
    def __init__(
        self, js: JetStreamContext, config: EngineConfig, pools: Callable[[], Sequence[PoolStatus]]
    ) -> None:
        self._config = config
        self._pools = pools
        self._tail = HistoryTail(js)
        self._server: MetricsServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.url = ""
        self.error = ""

    def collect(self) -> Iterator[Metric]:
        gauges = Gauges(pools=self._pools(), triggers=tuple(self._tail.triggers.values()))
        return families(self._tail.fold, gauges)

    async def start(self) -> None:
        """Port 0: metrics off — no endpoint, no fold, nothing mirrored into Ray."""
        port = self._config.metrics_port
        if port == 0:
            return
        self._tasks.append(asyncio.create_task(self._tail.run()))
        self._tasks.append(asyncio.create_task(self._mirror()))
        server = MetricsServer(self._config.metrics_host, port, self.collect)
        try:
            self.url = await server.start()
            self._server = server
        except OSError as exc:
            self.error = (
                f"metrics are off: {self._config.metrics_host}:{port} is taken "
                f"({exc.strerror or exc}); set ACTORFLOW_METRICS_PORT to a free port"
            )
            log.warning("%s", self.error)

    async def _mirror(self) -> None:
        mirror = RayMirror()
        while True:
            await asyncio.sleep(_MIRROR_EVERY)
            try:
                mirror.update(self.collect())
            except Exception as exc:  # Ray's metrics agent not there: /metrics still is
                log.debug("metrics: mirror into Ray failed: %s", exc)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._tail.close()
        if self._server is not None:
            await self._server.close()
