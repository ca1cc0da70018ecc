"""The engine's counters, folded from run histories — pure, no NATS, no Prometheus.

Counts must stay exact when any process dies, so they are not kept by the processes that
do the work (a run actor or a replica that dies takes its in-memory counters with it):
they are derived from the history stream, which is the truth, in the order JetStream
stores it. `MetricsFold` is fed every history event once, with its stream sequence; its
snapshot (`to_json`) records the sequence it has seen up to, so a restarted reader loads
the snapshot and goes on from the next sequence — nothing counted twice, nothing missed.

Labels are bounded on purpose: workflow, node, function and status, never a run id or an
attempt number (a label per run is a time series per run, which a Prometheus server
cannot keep).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from actorflow.definitions import events as ev

#: Seconds: from a fast step to a run that waits for hours.
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    43200.0,
    86400.0,
)
#: Bytes: a step's peak resident memory, 16 MiB to 64 GiB.
MEMORY_BUCKETS: Final = tuple(float(2**n) for n in range(24, 37))

#: Run statuses `runs_total` counts: a run stops in one of these (an INTERRUPTED one may
#: be resumed and stop again later: each stop is counted).
STOP_STATUSES: Final = frozenset(
    {
        ev.RunStatus.INTERRUPTED,
        ev.RunStatus.SUCCEEDED,
        ev.RunStatus.COMPENSATED,
        ev.RunStatus.TERMINATED,
    }
)
#: A run in one of these is done for good: the fold forgets it.
_FINAL: Final = frozenset(
    {ev.RunStatus.SUCCEEDED, ev.RunStatus.COMPENSATED, ev.RunStatus.TERMINATED}
)
_UNKNOWN = "unknown"

Labels = tuple[str, ...]
NodeFunctions = Callable[[ev.RunStarted], Mapping[str, str]]
"""Node id → the ``name@version`` of the function pool that runs its tasks."""


@dataclass
class Histogram:
    """Counts per bucket (not cumulative), the sum and the count of observations."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        value = max(value, 0.0)
        index = next((i for i, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        self.counts[index] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' ``le`` buckets: ``[("0.005", n), …, ("+Inf", count)]``."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


@dataclass
class _Run:
    """What the fold keeps of a run until it is done for good."""

    workflow: str
    started_at: datetime
    plan: str  # key into `MetricsFold.plans`: runs of one version share one node map
    active: bool = True
    scheduled: dict[str, datetime] = field(default_factory=dict)  # attempt id → when
    counted: set[str] = field(default_factory=set)  # attempt ids whose result was counted


@dataclass
class MetricsFold:
    """Counters and histograms over every history event seen, and the runs not yet done."""

    seq: int = 0  # the last stream sequence folded
    runs_started: dict[Labels, int] = field(default_factory=dict)  # (workflow,)
    runs_stopped: dict[Labels, int] = field(default_factory=dict)  # (workflow, status)
    node_attempts: dict[Labels, int] = field(default_factory=dict)  # (workflow, node, status)
    step_cpu_seconds: dict[Labels, float] = field(default_factory=dict)  # (workflow, node)
    run_duration: dict[Labels, Histogram] = field(default_factory=dict)  # (workflow, status)
    node_duration: dict[Labels, Histogram] = field(default_factory=dict)  # (workflow, node)
    queue_wait: dict[Labels, Histogram] = field(default_factory=dict)  # (function,)
    step_peak_memory: dict[Labels, Histogram] = field(default_factory=dict)  # (function,)
    runs: dict[str, _Run] = field(default_factory=dict)
    plans: dict[str, dict[str, str]] = field(default_factory=dict)
    workflows: set[str] = field(default_factory=set)  # every workflow seen: gauges report 0

    # --- reading ----------------------------------------------------------------------------
    def runs_active(self) -> dict[str, int]:
        """Runs started and not stopped (running, waiting, paused …), per workflow, with 0
        for every workflow that has had runs."""
        active = dict.fromkeys(self.workflows, 0)
        for run in self.runs.values():
            if run.active:
                active[run.workflow] = active.get(run.workflow, 0) + 1
        return active

    # --- folding ----------------------------------------------------------------------------
    def apply(self, seq: int, event: ev.HistoryEvent, node_functions: NodeFunctions) -> None:
        """Fold the event stored at stream sequence `seq`; one at or below `self.seq` was
        folded already (a reader that resumed a little early) and changes nothing."""
        if seq <= self.seq:
            return
        self.seq = seq
        run_id = event.run_id
        if isinstance(event, ev.RunStarted):
            self._started(event, node_functions)
            return
        run = self.runs.get(run_id)
        if run is None:  # done for good before the fold's snapshot, or started before it
            return
        if isinstance(event, ev.TasksScheduled):
            for task in event.tasks:
                if _counted_kind(task):
                    run.scheduled.setdefault(_attempt_id(task), event.at)
        elif isinstance(event, ev.TaskCompleted | ev.TaskFailed):
            self._result(run, event)
        elif isinstance(event, ev.RunStopped):
            self._stopped(run_id, run, event)
        elif isinstance(event, ev.RunControlled) and event.action in ("resume", "retry"):
            run.active = True

    def _started(self, event: ev.RunStarted, node_functions: NodeFunctions) -> None:
        if event.run_id in self.runs:
            return
        key = _plan_key(event)
        if key not in self.plans:
            try:
                self.plans[key] = dict(node_functions(event))
            except Exception:  # a plan that no longer compiles still counts its runs
                self.plans[key] = {}
        self.workflows.add(event.workflow)
        _add(self.runs_started, (event.workflow,), 1)
        self.runs[event.run_id] = _Run(event.workflow, event.at, key)

    def _result(self, run: _Run, event: ev.TaskCompleted | ev.TaskFailed) -> None:
        task = event.task
        if not _counted_kind(task):
            return
        attempt = _attempt_id(task)
        if attempt in run.counted:  # a result published twice (a replica redelivered)
            return
        run.counted.add(attempt)
        status = "succeeded" if isinstance(event, ev.TaskCompleted) else "failed"
        _add(self.node_attempts, (run.workflow, task.node, status), 1)
        execution = event.execution
        seconds = (execution.finished_at - execution.started_at).total_seconds()
        _observe(self.node_duration, (run.workflow, task.node), DURATION_BUCKETS, seconds)
        function = self.plans.get(run.plan, {}).get(task.node, _UNKNOWN)
        scheduled = run.scheduled.pop(attempt, None)
        if scheduled is not None:
            wait = (execution.started_at - scheduled).total_seconds()
            _observe(self.queue_wait, (function,), DURATION_BUCKETS, wait)
        if execution.cpu_seconds is not None:
            _add(self.step_cpu_seconds, (run.workflow, task.node), execution.cpu_seconds)
        if execution.peak_rss_bytes is not None:
            _observe(self.step_peak_memory, (function,), MEMORY_BUCKETS, execution.peak_rss_bytes)

    def _stopped(self, run_id: str, run: _Run, event: ev.RunStopped) -> None:
        if event.status not in STOP_STATUSES:  # PAUSED: still the user's, still active
            return
        labels = (run.workflow, event.status.value)
        _add(self.runs_stopped, labels, 1)
        seconds = (event.at - run.started_at).total_seconds()
        _observe(self.run_duration, labels, DURATION_BUCKETS, seconds)
        run.active = False
        run.scheduled.clear()  # an interrupted run's late results count, untimed
        if event.status in _FINAL:
            del self.runs[run_id]

    # --- snapshots --------------------------------------------------------------------------
    def to_json(self) -> bytes:
        """The whole fold, compressed: what a restarted reader resumes from."""
        data = {
            "v": 1,
            "seq": self.seq,
            "runs_started": _pairs(self.runs_started),
            "runs_stopped": _pairs(self.runs_stopped),
            "node_attempts": _pairs(self.node_attempts),
            "step_cpu_seconds": _pairs(self.step_cpu_seconds),
            "run_duration": _histograms(self.run_duration),
            "node_duration": _histograms(self.node_duration),
            "queue_wait": _histograms(self.queue_wait),
            "step_peak_memory": _histograms(self.step_peak_memory),
            "runs": {
                run_id: [
                    r.workflow,
                    r.started_at.isoformat(),
                    r.plan,
                    r.active,
                    {k: v.isoformat() for k, v in r.scheduled.items()},
                    sorted(r.counted),
                ]
                for run_id, r in self.runs.items()
            },
            "plans": self.plans,
            "workflows": sorted(self.workflows),
        }
        return zlib.compress(json.dumps(data, separators=(",", ":")).encode())

    @classmethod
    def from_json(cls, blob: bytes) -> MetricsFold:
        data: dict[str, Any] = json.loads(zlib.decompress(blob))
        if data.get("v") != 1:
            raise ValueError(f"unknown metrics snapshot version {data.get('v')!r}")
        fold = cls(seq=int(data["seq"]))
        fold.runs_started = _unpairs(data["runs_started"])
        fold.runs_stopped = _unpairs(data["runs_stopped"])
        fold.node_attempts = _unpairs(data["node_attempts"])
        fold.step_cpu_seconds = _unpairs(data["step_cpu_seconds"])
        fold.run_duration = _unhistograms(data["run_duration"], DURATION_BUCKETS)
        fold.node_duration = _unhistograms(data["node_duration"], DURATION_BUCKETS)
        fold.queue_wait = _unhistograms(data["queue_wait"], DURATION_BUCKETS)
        fold.step_peak_memory = _unhistograms(data["step_peak_memory"], MEMORY_BUCKETS)
        for run_id, (wf, at, plan, active, scheduled, counted) in data["runs"].items():
            fold.runs[run_id] = _Run(
                wf,
                datetime.fromisoformat(at),
                plan,
                active,
                {k: datetime.fromisoformat(v) for k, v in scheduled.items()},
                set(counted),
            )
        fold.plans = data["plans"]
        fold.workflows = set(data["workflows"])
        return fold


def _counted_kind(task: ev.TaskRef) -> bool:
    """Attempts of nodes; remediations and compensations are not node attempts."""
    return not (task.remedy or task.compensation)


def _attempt_id(task: ev.TaskRef) -> str:
    return f"{task.key}#{task.attempt}"


def _plan_key(event: ev.RunStarted) -> str:
    pinned = ",".join(f"{k}={v}" for k, v in sorted(event.functions.items()))
    return f"{event.workflow}@{event.version}|{pinned}"


def _add(counter: dict[Labels, Any], labels: Labels, amount: float) -> None:
    counter[labels] = counter.get(labels, 0) + amount


def _observe(
    histograms: dict[Labels, Histogram], labels: Labels, bounds: tuple[float, ...], value: float
) -> None:
    histogram = histograms.get(labels)
    if histogram is None:
        histogram = histograms[labels] = Histogram(bounds)
    histogram.observe(value)


def _pairs(counter: Mapping[Labels, float]) -> list[list[Any]]:
    return [[list(k), v] for k, v in counter.items()]


def _unpairs(pairs: list[list[Any]]) -> dict[Labels, Any]:
    return {tuple(k): v for k, v in pairs}


def _histograms(histograms: Mapping[Labels, Histogram]) -> list[list[Any]]:
    return [[list(k), h.counts, h.total, h.count] for k, h in histograms.items()]


def _unhistograms(rows: list[list[Any]], bounds: tuple[float, ...]) -> dict[Labels, Histogram]:
    return {tuple(k): Histogram(bounds, list(c), float(t), int(n)) for k, c, t, n in rows}
