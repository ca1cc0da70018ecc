"""O1/O3: W1 and W3 with metrics and tracing on, beside the same engine with both off.

Two engines share one Ray (each with its own nats-server and namespace): "off" has
``metrics_port=0`` (no fold, no endpoint) and no tracing; "on" folds every history event
and serves ``/metrics``, scraped every second while it runs (as Prometheus would, only more
often), and every engine process exports its spans over OTLP/HTTP to a collector in this
process (`_Collector`: it decodes and counts them). The two are measured alternately,
`repeat` rounds, so drift of the machine falls on both; the figures are medians. Plain Ray
tasks doing the same DAG are measured in the same run for scale.

python -m benchmarks.observability [--repeat 5] [--on metrics,tracing] [--sample-ratio 1]

`--on metrics` or `--on tracing` turns only one of them on in the second engine, to see
which of the two a cost belongs to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import threading
import urllib.request
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from actorflow import AsyncClient, Settings
from actorflow.actors.config import TracingConfig
from benchmarks import spine


class _Collector:
    """An OTLP/HTTP traces endpoint that decodes every export and counts its spans."""

    def __init__(self) -> None:
        self.spans = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                collector.spans += sum(
                    len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def config(self, ratio: float = 1.0) -> TracingConfig:
        """Export here; `ratio` below 1: record that share of runs' traces (head sampling)."""
        port = self._server.server_address[1]
        endpoint = f"http://127.0.0.1:{port}/v1/traces"
        if ratio >= 1.0:
            return TracingConfig(endpoint=endpoint)
        return TracingConfig(
            endpoint=endpoint, sampler="parentbased_traceidratio", sample_ratio=ratio
        )

    def close(self) -> None:
        self._server.shutdown()


async def _prepare(client: AsyncClient) -> None:
    await client.apply([*spine.functions(), spine.chain(100), spine.diamond()])
    for name in ("bench-chain-100", "bench-diamond"):
        await spine.af_wall(client, name)  # warm


async def _scrape_forever(url: str) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await loop.run_in_executor(None, lambda: urllib.request.urlopen(url, timeout=5).read())
        await asyncio.sleep(1.0)


@contextlib.asynccontextmanager
async def _engine(home: Path, namespace: str, **settings: Any) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(
        Settings(home=home, namespace=namespace, ray_num_cpus=4, webhook_port=0, **settings),
        log_to_driver=False,
    )
    async with client:
        await _prepare(client)
        yield client


async def run(
    repeat: int, on_: frozenset[str], ratio: float = 1.0
) -> dict[str, tuple[float, float]]:
    root = Path(tempfile.mkdtemp(prefix="actorflow-bench-obs-"))
    collector = _Collector()
    metrics_port = _free_port() if "metrics" in on_ else 0
    tracing = collector.config(ratio) if "tracing" in on_ else None
    async with (
        _engine(root / "off", "bench-off", metrics_port=0, tracing=None) as off,
        _engine(root / "on", "bench-on", metrics_port=metrics_port, tracing=tracing) as on,
    ):
        url = (await on.engine_info()).metrics_url
        scraper = asyncio.create_task(_scrape_forever(url) if url else asyncio.sleep(0))
        w1: dict[str, list[float]] = {"off": [], "on": []}
        w3: dict[str, list[float]] = {"off": [], "on": []}
        try:
            for _ in range(repeat):
                for label, client in (("off", off), ("on", on)):
                    w1[label].append(await spine.af_wall(client, "bench-chain-100") * 10)
                    wall, _lat = await spine.af_diamonds(client, 100)
                    w3[label].append(100 / wall)
        finally:
            scraper.cancel()
        await asyncio.sleep(6)  # the last spans' export (every 5 s by default)
    collector.close()
    ray_w1 = statistics.median(spine.ray_chain(100) * 10 for _ in range(repeat))
    ray_w3 = 100 / statistics.median(spine.ray_diamonds(100)[0] for _ in range(repeat))
    m = statistics.median
    return {
        "W1 chain of 100, ms/step — off": (m(w1["off"]), ray_w1),
        "W1 chain of 100, ms/step — on": (m(w1["on"]), ray_w1),
        "W1 on / off": (m(w1["on"]) / m(w1["off"]), 1.0),
        "W3 100 diamonds, runs/s — off": (m(w3["off"]), ray_w3),
        "W3 100 diamonds, runs/s — on": (m(w3["on"]), ray_w3),
        "W3 off / on (throughput)": (m(w3["off"]) / m(w3["on"]), 1.0),
        "spans received (on)": (float(collector.spans), 0.0),
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observability")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--on", default="metrics,tracing", help="what the second engine turns on (comma list)"
    )
    parser.add_argument(
        "--sample-ratio", type=float, default=1.0, help="share of traces recorded (0-1)"
    )
    args = parser.parse_args()
    on_ = frozenset(part.strip() for part in args.on.split(",") if part.strip())
    if not on_ <= {"metrics", "tracing"}:
        parser.error(f"--on takes metrics and/or tracing, not {args.on!r}")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not 0.0 < args.sample_ratio <= 1.0:
        parser.error("--sample-ratio takes a share above 0, up to 1")
    results = asyncio.run(run(args.repeat, on_, args.sample_ratio))
    print(f"{'benchmark':40} {'actorflow':>12} {'plain Ray':>12}")
    for name, (ours, theirs) in results.items():
        print(f"{name:40} {ours:12.4g} {theirs:12.4g}")
    slow = max(results["W1 on / off"][0], results["W3 off / on (throughput)"][0])
    print(f"{' + '.join(sorted(on_))} cost: {100 * (slow - 1):+.1f} % (target: within 10 %)")
    if "tracing" in on_ and results["spans received (on)"][0] == 0:
        raise SystemExit("tracing was on but the collector received no span")


if __name__ == "__main__":
    main()
