"""``GET /metrics`` in the Prometheus text format, served from the controller's loop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger(__name__)


class _Families(Collector):
    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        yield from self._collect()


class MetricsServer:
    """An HTTP server with one route; `start` says where it listens, or raises OSError
    (the port is taken) for the caller to report — metrics are never worth a run."""

    def __init__(self, host: str, port: int, collect: Callable[[], Iterable[Metric]]) -> None:
        self._host, self._port = host, port
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Families(collect))
        self._runner: web.AppRunner | None = None
        self.url = ""

    def render(self) -> bytes:
        return generate_latest(self._registry)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        # SO_REUSEADDR: a restarted controller binds again past its predecessor's
        # TIME_WAIT connections; a port another process listens on is still refused.
        site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]  # the port the system chose, for port 0
        self.url = f"http://{self._host}:{port}/metrics"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = self.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
