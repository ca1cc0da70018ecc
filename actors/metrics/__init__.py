"""Metrics of the engine: counts folded from run histories (``fold``, pure), their
Prometheus families (``families``), the controller's ``/metrics`` and the mirror into
`ray.util.metrics`. May import the other engines; only the controller imports it.
"""

from actorflow.actors.metrics.families import CATALOGUE, PREFIX, Gauges, families
from actorflow.actors.metrics.fold import MetricsFold
from actorflow.actors.metrics.service import MetricsService

__all__ = ["CATALOGUE", "PREFIX", "Gauges", "MetricsFold", "MetricsService", "families"]
