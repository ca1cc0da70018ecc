"""The metrics fold: exact counts from history events, snapshots that resume exactly, and
the Prometheus text it renders (pure: no NATS, no Ray)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from actorflow.actors.functions.pools import PoolStatus
from actorflow.actors.metrics import CATALOGUE, PREFIX, Gauges, MetricsFold, families
from actorflow.actors.metrics.tail import folded
from actorflow.definitions import events as ev

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FUNCTIONS = {"a": "resize@2", "b": "store@1"}


def _node_functions(_started: ev.RunStarted) -> dict[str, str]:
    return FUNCTIONS


def _t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _started(run_id: str, at: float = 0.0) -> ev.RunStarted:
    return ev.RunStarted(
        run_id=run_id,
        workflow="wf",
        version="1",
        plan={},
        functions={"resize": "2", "store": "1"},
        inputs={},
        at=_t(at),
    )


def _execution(start: float, end: float, cpu: float = 0.5) -> ev.Execution:
    return ev.Execution(
        started_at=_t(start), finished_at=_t(end), cpu_seconds=cpu, peak_rss_bytes=100 * 2**20
    )


def _done(run_id: str, node: str, attempt: int, start: float, end: float) -> ev.TaskCompleted:
    return ev.TaskCompleted(
        run_id=run_id,
        task=ev.TaskRef(node=node, attempt=attempt),
        output=ev.Payload(inline=1),
        execution=_execution(start, end),
    )


def _failed(run_id: str, node: str, attempt: int, start: float, end: float) -> ev.TaskFailed:
    error = ev.ErrorInfo(code="HANDLER_ERROR", message="boom", type="ValueError")
    return ev.TaskFailed(
        run_id=run_id,
        task=ev.TaskRef(node=node, attempt=attempt),
        error=error,
        execution=_execution(start, end),
    )


def _scheduled(run_id: str, at: float, *tasks: tuple[str, int]) -> ev.TasksScheduled:
    refs = [ev.TaskRef(node=n, attempt=a) for n, a in tasks]
    return ev.TasksScheduled(run_id=run_id, tasks=refs, at=_t(at))


def _stopped(run_id: str, status: ev.RunStatus, at: float) -> ev.RunStopped:
    return ev.RunStopped(run_id=run_id, status=status, at=_t(at))


def _history(run_id: str, offset: float = 0.0) -> list[ev.HistoryEvent]:
    """a succeeds; b fails once (its retry succeeds); the run succeeds."""
    o = offset
    return [
        _started(run_id, o),
        _scheduled(run_id, o + 0.1, ("a", 1)),
        _done(run_id, "a", 1, o + 0.3, o + 1.3),
        _scheduled(run_id, o + 1.4, ("b", 1)),
        _failed(run_id, "b", 1, o + 1.5, o + 1.6),
        _scheduled(run_id, o + 2.0, ("b", 2)),
        _done(run_id, "b", 2, o + 2.0, o + 2.5),
        _stopped(run_id, ev.RunStatus.SUCCEEDED, o + 3.0),
    ]


def _fold(events: list[ev.HistoryEvent], fold: MetricsFold | None = None) -> MetricsFold:
    fold = fold or MetricsFold()
    for seq, event in enumerate(events, start=1):
        fold.apply(seq, event, _node_functions)
    return fold


def test_a_run_is_counted_by_its_outcome_and_each_attempt_by_its_own() -> None:
    fold = _fold(_history("r1"))
    assert fold.runs_started == {("wf",): 1}
    assert fold.runs_stopped == {("wf", "SUCCEEDED"): 1}
    assert fold.node_attempts == {
        ("wf", "a", "succeeded"): 1,
        ("wf", "b", "failed"): 1,
        ("wf", "b", "succeeded"): 1,
    }
    assert fold.step_cpu_seconds == {("wf", "a"): 0.5, ("wf", "b"): 1.0}
    assert fold.run_duration[("wf", "SUCCEEDED")].total == 3.0
    assert fold.node_duration[("wf", "a")].total == 1.0
    # schedule → start: a waited 0.2 s on resize@2; b 0.1 s then 0 s on store@1
    assert round(fold.queue_wait[("resize@2",)].total, 6) == 0.2
    assert fold.queue_wait[("store@1",)].count == 2
    assert fold.step_peak_memory[("store@1",)].count == 2
    assert fold.runs_active() == {"wf": 0}
    assert fold.runs == {}  # done for good: forgotten


def test_a_result_published_twice_and_an_event_read_twice_count_once() -> None:
    events = _history("r1")
    fold = MetricsFold()
    for seq, event in enumerate(events[:3], start=1):
        fold.apply(seq, event, _node_functions)
    fold.apply(3, events[2], _node_functions)  # a reader that resumed one message early
    fold.apply(4, _done("r1", "a", 1, 0.3, 1.3), _node_functions)  # redelivered result
    assert fold.node_attempts == {("wf", "a", "succeeded"): 1}


def test_an_interrupted_run_that_is_resumed_counts_each_stop_and_is_active_again() -> None:
    events: list[ev.HistoryEvent] = [
        _started("r1"),
        _scheduled("r1", 0.0, ("a", 1)),
        _failed("r1", "a", 1, 0.0, 0.1),
        _stopped("r1", ev.RunStatus.INTERRUPTED, 0.2),
    ]
    fold = _fold(events)
    assert fold.runs_active() == {"wf": 0}
    resume = ev.RunControlled(run_id="r1", id="c1", action="resume", at=_t(5))
    fold.apply(5, resume, _node_functions)
    assert fold.runs_active() == {"wf": 1}
    fold.apply(6, _done("r1", "a", 2, 5.0, 5.5), _node_functions)
    fold.apply(7, _stopped("r1", ev.RunStatus.SUCCEEDED, 6.0), _node_functions)
    assert fold.runs_stopped == {("wf", "INTERRUPTED"): 1, ("wf", "SUCCEEDED"): 1}
    assert fold.runs_active() == {"wf": 0}


def test_a_paused_run_stays_active_and_is_not_counted_as_stopped() -> None:
    fold = _fold([_started("r1"), _stopped("r1", ev.RunStatus.PAUSED, 1.0)])
    assert fold.runs_stopped == {}
    assert fold.runs_active() == {"wf": 1}


def test_events_of_a_run_the_fold_never_saw_start_change_nothing() -> None:
    fold = _fold([_done("ghost", "a", 1, 0, 1), _stopped("ghost", ev.RunStatus.SUCCEEDED, 2)])
    assert fold.node_attempts == {}
    assert fold.runs_stopped == {}
    assert fold.seq == 2


def _interleaved(n: int) -> list[ev.HistoryEvent]:
    runs = [_history(f"r{i}", offset=i * 0.05) for i in range(n)]
    out: list[ev.HistoryEvent] = []
    for step in range(len(runs[0])):
        out.extend(run[step] for run in runs)
    return out


@settings(max_examples=60, deadline=None)
@given(
    runs=st.integers(min_value=1, max_value=4),
    data=st.data(),
)
def test_a_reader_that_restarts_from_any_snapshot_ends_with_the_same_counts(
    runs: int, data: st.DataObject
) -> None:
    events = _interleaved(runs)
    whole = _fold(events)
    cut = data.draw(st.integers(min_value=0, max_value=len(events)), label="snapshot at")
    early = data.draw(st.integers(min_value=0, max_value=cut), label="resume this much early")
    first = MetricsFold()
    for seq, event in enumerate(events[:cut], start=1):
        first.apply(seq, event, _node_functions)
    resumed = MetricsFold.from_json(first.to_json())
    for seq, event in enumerate(events, start=1):
        if seq > cut - early:  # the consumer starts at or before the snapshot's sequence
            resumed.apply(seq, event, _node_functions)
    assert resumed.to_json() == whole.to_json()
    assert resumed.runs_stopped == {("wf", "SUCCEEDED"): runs}
    assert resumed.node_attempts[("wf", "b", "failed")] == runs


class _Families(Collector):
    def __init__(self, fold: MetricsFold, gauges: Gauges) -> None:
        self._fold, self._gauges = fold, gauges

    def collect(self):  # type: ignore[no-untyped-def]
        return families(self._fold, self._gauges)


def _scrape(
    fold: MetricsFold, gauges: Gauges
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(fold, gauges))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _pool(replicas: int, pending: int, in_flight: int) -> PoolStatus:
    return PoolStatus(
        function="resize",
        version="2",
        handler="h:f",
        replicas=replicas,
        desired=replicas,
        min=0,
        max=4,
        pending=pending,
        in_flight=in_flight,
        max_concurrency=4,
    )


def test_the_exposition_has_exact_values_zeros_for_what_exists_and_no_run_ids() -> None:
    fold = _fold(_history("r1"))
    gauges = Gauges(
        pools=[_pool(replicas=0, pending=3, in_flight=0)],
        triggers=[ev.TriggerStats(name="t", seen=5, matched=4, started=4, rejected=1)],
    )
    samples = _scrape(fold, gauges)
    assert samples[("actorflow_runs_total", (("status", "SUCCEEDED"), ("workflow", "wf")))] == 1
    attempt = (("node", "b"), ("status", "failed"), ("workflow", "wf"))
    assert samples[("actorflow_node_attempts_total", attempt)] == 1
    assert samples[("actorflow_runs_active", (("workflow", "wf"),))] == 0
    ready = (("function", "resize@2"), ("state", "ready"))
    assert samples[("actorflow_pool_replicas", ready)] == 0
    assert samples[("actorflow_pool_slots_available", (("function", "resize@2"),))] == 0
    assert samples[("actorflow_function_queue_depth", (("function", "resize@2"),))] == 3
    seen = (("outcome", "seen"), ("trigger", "t"))
    assert samples[("actorflow_trigger_events_total", seen)] == 5
    wait = (("function", "resize@2"), ("le", "+Inf"))
    assert samples[("actorflow_task_queue_wait_seconds_bucket", wait)] == 1
    hours = (("le", "14400.0"), ("status", "SUCCEEDED"), ("workflow", "wf"))
    assert samples[("actorflow_run_duration_seconds_bucket", hours)] == 1
    labels = {k for _, pairs in samples for k, _ in pairs}
    assert labels <= {"workflow", "node", "function", "status", "state", "trigger", "outcome", "le"}
    assert all(name.startswith(PREFIX) for name, _ in samples)


def test_every_catalogued_metric_is_rendered() -> None:
    fold = _fold(_history("r1"))
    gauges = Gauges(pools=[_pool(1, 0, 1)], triggers=[ev.TriggerStats(name="t")])
    names = {name for name, _ in _scrape(fold, gauges)}
    for name, (kind, _, _) in CATALOGUE.items():
        expected = PREFIX + name + ("_count" if kind == "histogram" else "")
        assert expected in names, expected


def test_the_tail_skips_undecoded_only_what_the_fold_ignores() -> None:
    ignored: list[ev.HistoryEvent] = [
        ev.RunClaimed(run_id="r1", incarnation="i-1"),
        ev.TaskStarted(run_id="r1", task=ev.TaskRef(node="a", attempt=1), replica="x"),
        ev.StepProgress(run_id="r1", node="a", percent=50.0),
    ]
    history = _history("r1")
    for event in history:
        assert folded(ev.encode(event)), type(event).__name__
    for event in ignored:
        assert not folded(ev.encode(event)), type(event).__name__
    # Skipping them as the tail does folds to what applying them all does.
    mixed = [history[0], *ignored, *history[1:]]
    skipping = MetricsFold()
    for seq, event in enumerate(mixed, start=1):
        if folded(ev.encode(event)):
            skipping.apply(seq, event, _node_functions)
        else:
            skipping.seq = max(skipping.seq, seq)
    assert skipping.to_json() == _fold(mixed).to_json()
    assert skipping.seq == len(mixed)
    assert folded(b"not json at all")  # unsure: decoded (and refused) as before
