"""The ``actorflow_*`` metric families, built from the fold and the controller's gauges.

Pure: it turns plain values into prometheus-client metric families and serves nothing.
Gauges for what exists report 0 instead of vanishing (a pool with no replicas still says
``pool_replicas{state="ready"} 0``), so an alert on "no ready replicas" can fire.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from actorflow.actors.functions.pools import PoolStatus
from actorflow.actors.metrics.fold import Histogram, Labels, MetricsFold
from actorflow.definitions import events as ev

PREFIX: Final = "actorflow_"
REPLICA_STATES: Final = ("ready", "starting", "draining")
TRIGGER_OUTCOMES: Final = ("seen", "matched", "started", "errors", "rejected")


@dataclass(frozen=True)
class Gauges:
    """What the controller knows now, beside the fold."""

    pools: Sequence[PoolStatus] = ()
    triggers: Sequence[ev.TriggerStats] = ()


#: name (without the prefix) → (kind, help, label names): the catalogue a test checks the
#: shipped dashboard and alert rules against.
CATALOGUE: Final[Mapping[str, tuple[str, str, tuple[str, ...]]]] = {
    "runs_started_total": ("counter", "Runs started.", ("workflow",)),
    "runs_total": (
        "counter",
        "Runs that stopped, by the status they stopped in (a resumed run counts again).",
        ("workflow", "status"),
    ),
    "node_attempts_total": (
        "counter",
        "Node attempts that ended, succeeded or failed.",
        ("workflow", "node", "status"),
    ),
    "step_cpu_seconds_total": (
        "counter",
        "CPU seconds of the threads that ran steps.",
        ("workflow", "node"),
    ),
    "run_duration_seconds": (
        "histogram",
        "From a run's start to its stop.",
        ("workflow", "status"),
    ),
    "node_duration_seconds": ("histogram", "One node attempt, start to end.", ("workflow", "node")),
    "task_queue_wait_seconds": (
        "histogram",
        "From a task's scheduling to the start of its execution.",
        ("function",),
    ),
    "step_peak_memory_bytes": (
        "histogram",
        "The replica process's peak resident memory while a step ran.",
        ("function",),
    ),
    "runs_active": ("gauge", "Runs started and not stopped.", ("workflow",)),
    "function_queue_depth": ("gauge", "Tasks waiting for a replica.", ("function",)),
    "pool_replicas": ("gauge", "Replicas of a function pool, by state.", ("function", "state")),
    "pool_slots_available": (
        "gauge",
        "Tasks the ready replicas could take now.",
        ("function",),
    ),
    "trigger_events_total": (
        "counter",
        "Events a trigger saw, matched, started runs for, failed on or rejected.",
        ("trigger", "outcome"),
    ),
}


def families(fold: MetricsFold, gauges: Gauges) -> Iterator[Metric]:
    yield _counter("runs_started_total", fold.runs_started.items())
    yield _counter("runs_total", fold.runs_stopped.items())
    yield _counter("node_attempts_total", fold.node_attempts.items())
    yield _counter("step_cpu_seconds_total", fold.step_cpu_seconds.items())
    yield _histogram("run_duration_seconds", fold.run_duration)
    yield _histogram("node_duration_seconds", fold.node_duration)
    yield _histogram("task_queue_wait_seconds", fold.queue_wait)
    yield _histogram("step_peak_memory_bytes", fold.step_peak_memory)
    yield _gauge("runs_active", (((wf,), n) for wf, n in fold.runs_active().items()))
    yield _gauge("function_queue_depth", (((p.ref,), p.pending) for p in gauges.pools))
    yield _gauge(
        "pool_replicas",
        (
            ((p.ref, state), count)
            for p in gauges.pools
            for state, count in zip(
                REPLICA_STATES, (p.replicas, p.starting, p.draining), strict=True
            )
        ),
    )
    yield _gauge("pool_slots_available", (((p.ref,), _slots(p)) for p in gauges.pools))
    yield _counter(
        "trigger_events_total",
        (
            ((t.name, outcome), getattr(t, outcome))
            for t in gauges.triggers
            for outcome in TRIGGER_OUTCOMES
        ),
    )


def _slots(pool: PoolStatus) -> int:
    return max(pool.replicas * pool.max_concurrency - pool.in_flight, 0)


def _labels(name: str) -> list[str]:
    return list(CATALOGUE[name][2])


def _counter(name: str, rows: Iterable[tuple[Labels, float]]) -> Metric:
    family = CounterMetricFamily(PREFIX + name, CATALOGUE[name][1], labels=_labels(name))
    for labels, value in rows:
        family.add_metric(list(labels), value)
    return family


def _gauge(name: str, rows: Iterable[tuple[Labels, float]]) -> Metric:
    family = GaugeMetricFamily(PREFIX + name, CATALOGUE[name][1], labels=_labels(name))
    for labels, value in rows:
        family.add_metric(list(labels), value)
    return family


def _histogram(name: str, histograms: Mapping[Labels, Histogram]) -> Metric:
    family = HistogramMetricFamily(PREFIX + name, CATALOGUE[name][1], labels=_labels(name))
    for labels, h in histograms.items():
        family.add_metric(list(labels), h.cumulative(), sum_value=h.total)
    return family
