"""The same figures through `ray.util.metrics`, so Ray's own Prometheus endpoint (and the
Ray dashboard's Grafana) carries them beside Ray's.

Everything is exported as a Ray gauge set to the exact value (Ray's counters can only be
incremented from the process that owns them, and a restarted controller would start them
again from zero); Ray adds its ``ray_`` prefix: ``ray_actorflow_runs_total``. Histograms
go as their ``_count`` and ``_sum``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client.core import Metric
from ray.util.metrics import Gauge

log = logging.getLogger(__name__)


class RayMirror:
    def __init__(self) -> None:
        self._gauges: dict[str, Gauge] = {}

    def update(self, families: Iterable[Metric]) -> None:
        for family in families:
            for sample in family.samples:
                if sample.name.endswith(("_bucket", "_created")):
                    continue
                gauge = self._gauges.get(sample.name)
                if gauge is None:
                    gauge = Gauge(
                        sample.name, description=family.documentation, tag_keys=tuple(sample.labels)
                    )
                    self._gauges[sample.name] = gauge
                gauge.set(sample.value, tags=dict(sample.labels))
