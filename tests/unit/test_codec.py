"""The wire codec: `encode` / `decode` / `decode_history` round-trip every message, and
anything else is a `DecodeError` (never a pydantic error, never a wrong model)."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from actorflow.definitions import events as ev
from actorflow.definitions.events import DecodeError

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
TASK = ev.TaskRef(node="load", index=2, attempt=3)
EXECUTION = ev.Execution(
    replica="af-fn-load-1-abc",
    ray_node="n1",
    workflow="etl",
    started_at=T0,
    finished_at=T0 + timedelta(seconds=1.5),
    cpu_seconds=0.25,
    peak_rss_bytes=10_000_000,
    gpu_ids=["0"],
)
ERROR = ev.ErrorInfo(
    code="BOOM",
    message="it broke",
    type="builtins.ValueError",
    traceback="Traceback ...",
    retryable=False,
    details={"row": 7, "why": ["bad", None]},
)

# One of every history event, with the optional fields set (the defaults are tried below).
HISTORY: list[Any] = [
    ev.RunStarted(
        run_id="r1",
        at=T0,
        workflow="etl",
        version="2",
        plan={"spec": {"nodes": [{"id": "load"}]}},
        functions={"load@latest": "4"},
        retries={"load": {"maxAttempts": 3}},
        hooks={"notify@1": {"handler": "m:f", "code_dir": None}},
        inputs={"n": 1, "names": ["a"], "deep": {"x": None}},
        concurrency=ev.ConcurrencyRef(
            group="etl", key="prod", limit=2, queue=ev.queue_name("etl", "prod")
        ),
    ),
    ev.RunClaimed(run_id="r1", at=T0, incarnation="inc-2"),
    ev.RunAdmitted(run_id="r1", at=T0, episode=1, seq=42),
    ev.TasksScheduled(
        run_id="r1", at=T0, tasks=[TASK, ev.TaskRef(node="fix", attempt=1, remedy=True)]
    ),
    ev.RunStopped(
        run_id="r1",
        at=T0,
        status=ev.RunStatus.WAITING,
        reason=ev.StopReason.MANUAL,
        outputs={"y": [1, 2]},
        node="load",
        error=ERROR,
        guidance="call the owner",
        wake_at=T0 + timedelta(hours=1),
    ),
    ev.RunControlled(
        run_id="r1",
        at=T0,
        id="ctl-1",
        action="approve",
        node="ok",
        from_start=True,
        reason="looked fine",
        input={"approved": True},
    ),
    ev.RunSignalled(run_id="r1", at=T0, id="r1.w.signal.9", node="w", payload=[1, "two"]),
    ev.StepProgress(run_id="r1", at=T0, node="load", index=2, percent=42.5, message="rows"),
    ev.WaitsStarted(
        run_id="r1",
        at=T0,
        waits=[
            ev.WaitRef(node="nap", kind="sleep", due_at=T0 + timedelta(seconds=8)),
            ev.WaitRef(node="w", kind="wait", signal="paid", key="order-1"),
        ],
    ),
    ev.WaitEnded(run_id="r1", at=T0, node="nap", outcome="timeout"),
    ev.TimedOut(run_id="r1", at=T0, node="load"),
    ev.HookCalled(run_id="r1", at=T0, point="after_node", node="load", call="m:f", error=ERROR),
    ev.TaskStarted(run_id="r1", at=T0, task=TASK, replica="af-fn-load-1-abc", ray_node="n1"),
    ev.TaskCompleted(
        run_id="r1",
        at=T0,
        task=TASK,
        output=ev.Payload(blob=ev.BlobRef(name="r1/load/2", size=99)),
        execution=EXECUTION,
    ),
    ev.TaskFailed(run_id="r1", at=T0, task=TASK, error=ERROR, execution=EXECUTION),
]

# The other messages of the contract, each decoded with `decode(model, data)`.
RUN: dict[str, Any] = {"run_id": "r1", "workflow": "etl", "version": "2"}
OTHERS: list[BaseModel] = [
    ev.TaskScheduled(
        run_id="r1",
        workflow="etl",
        task=TASK,
        function="load",
        version="4",
        inputs=ev.Payload(inline={"rows": [1, 2]}),
        at=T0,
    ),
    ev.ControlRequest(action="retry", node="load", from_start=True, reason="again", input=3),
    ev.LogBatch(
        lines=[
            ev.LogLine(
                run_id="r1",
                workflow="etl",
                node="load",
                index=2,
                attempt=3,
                replica="rep",
                stream="log",
                level="INFO",
                logger="etl",
                text="hello",
                seq=4,
                at=T0,
            )
        ]
    ),
    ev.RunRecord(
        **RUN,
        status=ev.RunStatus.INTERRUPTED,
        created_at=T0,
        updated_at=T0,
        started_at=T0,
        finished_at=T0,
        progress=ev.Progress(
            total=3, succeeded=1, failed=1, running=1, steps={"load": ev.StepReport(percent=5)}
        ),
        outputs={"y": 1},
        reason=ev.StopReason.FAILED,
        node="load",
        error=ERROR,
        guidance="look",
        wake_at=T0,
        hook_failures=["after_run m:f: boom"],
    ),
    ev.RunLifecycle(
        **RUN,
        status=ev.RunStatus.SUCCEEDED,
        at=T0,
        outputs={"y": 1},
    ),
    ev.NodeLifecycle(
        **RUN,
        node="load",
        status="failed",
        attempt=3,
        at=T0,
        error=ERROR,
    ),
    ev.ScheduleTick(trigger="nightly", instant=T0, at=T0),
    ev.TriggerStats(name="nightly", seen=3, matched=2, started=2, errors=1, last_event_at=T0),
]


def _history_types() -> set[type]:
    """The members of the `HistoryEvent` union, read from the type itself."""
    union = typing.get_args(ev.HistoryEvent)[0]
    return set(typing.get_args(union))


def test_the_examples_cover_every_history_event_type() -> None:
    assert {type(e) for e in HISTORY} == _history_types()
    assert len(HISTORY) == len(_history_types())


def _assert_round_trips(event: Any) -> None:
    """decode_history(encode(event)) is the same event, of the same type, and encodes the same."""
    data = ev.encode(event)
    back = ev.decode_history(data)
    assert type(back) is type(event)
    assert back == event
    assert ev.encode(back) == data


@pytest.mark.parametrize("event", HISTORY, ids=lambda e: type(e).__name__)
def test_every_history_event_round_trips(event: Any) -> None:
    _assert_round_trips(event)
    assert ev.decode(type(event), ev.encode(event)) == event


@pytest.mark.parametrize("event", HISTORY, ids=lambda e: type(e).__name__)
def test_a_history_event_says_its_type_and_schema_version(event: Any) -> None:
    fields = json.loads(ev.encode(event))
    assert fields["type"] == type(event).__name__
    assert fields["v"] == ev.SCHEMA_VERSION
    assert fields["run_id"] == "r1"
    assert datetime.fromisoformat(fields["at"]) == T0


@pytest.mark.parametrize("message", OTHERS, ids=lambda m: type(m).__name__)
def test_every_other_message_round_trips(message: BaseModel) -> None:
    data = ev.encode(message)
    assert ev.decode(type(message), data) == message


def test_defaults_round_trip_too() -> None:
    """Unset optional fields (None, empty) survive the trip: encode writes them out."""
    event = ev.HookCalled(run_id="r1", point="before_run", call="m:f")
    fields = json.loads(ev.encode(event))
    assert fields["node"] is None
    assert fields["error"] is None
    assert ev.decode_history(ev.encode(event)) == event
    record = ev.RunRecord(
        run_id="r1", workflow="w", version="1", status="PENDING", created_at=T0, updated_at=T0
    )
    assert ev.decode(ev.RunRecord, ev.encode(record)) == record


def test_an_older_event_without_the_later_fields_still_decodes() -> None:
    """Execution's accounting fields came after schema v1: an event without them decodes,
    with "unknown" (None / empty) in their place."""
    fields = json.loads(ev.encode(HISTORY[-1]))
    for later in ("cpu_seconds", "peak_rss_bytes", "gpu_ids"):
        del fields["execution"][later]
    back = ev.decode_history(json.dumps(fields).encode())
    assert isinstance(back, ev.TaskFailed)
    assert back.execution.cpu_seconds is None
    assert back.execution.peak_rss_bytes is None
    assert back.execution.gpu_ids == []
    assert back.error == ERROR


def test_fields_a_newer_writer_added_are_ignored() -> None:
    fields = {**json.loads(ev.encode(HISTORY[1])), "from_the_future": {"x": 1}}
    assert ev.decode_history(json.dumps(fields).encode()) == HISTORY[1]


# --- what is not a message --------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff\xfe\x00",
        b"{",
        b"null",
        b"42",
        b'"RunClaimed"',
        b"[]",
        b"{}",
    ],
)
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError, match=r"^not a history event: "):
        ev.decode_history(data)
    with pytest.raises(DecodeError, match=r"^not a RunRecord: "):
        ev.decode(ev.RunRecord, data)


@pytest.mark.parametrize("kind", ["Nope", "runclaimed", "TaskScheduled", "RunRecord", None, 3])
def test_an_unknown_type_is_a_decode_error(kind: Any) -> None:
    fields = {**json.loads(ev.encode(HISTORY[1])), "type": kind}
    with pytest.raises(DecodeError, match=r"^not a history event: "):
        ev.decode_history(json.dumps(fields).encode())


def test_a_message_of_another_kind_is_not_a_history_event() -> None:
    with pytest.raises(DecodeError):
        ev.decode_history(ev.encode(OTHERS[0]))  # a TaskScheduled, from the task queue


@pytest.mark.parametrize(
    ("event", "missing"),
    [
        (HISTORY[0], "plan"),
        (HISTORY[1], "incarnation"),
        (HISTORY[1], "run_id"),
        (HISTORY[2], "episode"),
        (HISTORY[3], "tasks"),
        (HISTORY[13], "task"),
        (HISTORY[13], "execution"),
        (HISTORY[14], "error"),
    ],
    ids=lambda x: x if isinstance(x, str) else type(x).__name__,
)
def test_a_missing_field_is_a_decode_error(event: Any, missing: str) -> None:
    fields = json.loads(ev.encode(event))
    del fields[missing]
    data = json.dumps(fields).encode()
    with pytest.raises(DecodeError, match=r"^not a history event: "):
        ev.decode_history(data)
    with pytest.raises(DecodeError, match=rf"^not a {type(event).__name__}: "):
        ev.decode(type(event), data)


@pytest.mark.parametrize(
    ("event", "path", "value"),
    [
        (HISTORY[3], ("tasks", 0, "attempt"), "third"),
        (HISTORY[4], ("status",), "ASLEEP"),
        (HISTORY[7], ("percent",), 101),
        (HISTORY[9], ("outcome",), "later"),
        (HISTORY[11], ("at",), "yesterday"),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, BaseModel) else str(x),
)
def test_a_field_of_the_wrong_shape_is_a_decode_error(
    event: Any, path: tuple[Any, ...], value: Any
) -> None:
    fields = json.loads(ev.encode(event))
    inner = fields
    for step in path[:-1]:
        inner = inner[step]
    inner[path[-1]] = value
    with pytest.raises(DecodeError):
        ev.decode_history(json.dumps(fields).encode())


def test_a_decode_error_says_what_is_wrong() -> None:
    with pytest.raises(DecodeError) as caught:
        ev.decode(ev.TaskScheduled, b"{}")
    assert str(caught.value) == "not a TaskScheduled: Field required"


# --- a property: whatever goes in comes out -----------------------------------------------
_TEXT = st.text(max_size=12)
_ID = st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True)
_TIME = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_TASKS = st.builds(
    ev.TaskRef,
    node=_ID,
    index=st.none() | st.integers(0, 10_000),
    attempt=st.integers(1, 1000),
    remedy=st.booleans(),
)
_ERRORS = st.builds(
    ev.ErrorInfo,
    code=_ID,
    message=_TEXT,
    type=_TEXT,
    traceback=_TEXT,
    retryable=st.booleans(),
    details=st.dictionaries(_TEXT, _JSON, max_size=3),
)
_EXECUTIONS = st.builds(
    ev.Execution,
    replica=_TEXT,
    ray_node=_TEXT,
    workflow=_TEXT,
    started_at=_TIME,
    finished_at=_TIME,
    cpu_seconds=st.none() | st.floats(0, 1e6),
    peak_rss_bytes=st.none() | st.integers(0, 2**40),
    gpu_ids=st.lists(_ID, max_size=2),
)
_PAYLOADS = st.builds(ev.Payload, inline=_JSON) | st.builds(
    ev.Payload, blob=st.builds(ev.BlobRef, name=_TEXT, size=st.integers(0, 2**40))
)


def _event(cls: type, **fields: Any) -> st.SearchStrategy[Any]:
    return st.builds(cls, run_id=_ID, at=_TIME, **fields)


_EVENTS = st.one_of(
    _event(
        ev.RunStarted,
        workflow=_ID,
        version=_ID,
        plan=st.dictionaries(_TEXT, _JSON, max_size=3),
        functions=st.dictionaries(_ID, _ID, max_size=3),
        inputs=st.dictionaries(_TEXT, _JSON, max_size=3),
    ),
    _event(ev.RunClaimed, incarnation=_TEXT),
    _event(ev.TasksScheduled, tasks=st.lists(_TASKS, max_size=4)),
    _event(
        ev.RunStopped,
        status=st.sampled_from(ev.RunStatus),
        reason=st.none() | st.sampled_from(ev.StopReason),
        outputs=st.dictionaries(_TEXT, _JSON, max_size=3),
        node=st.none() | _ID,
        error=st.none() | _ERRORS,
        guidance=_TEXT,
        wake_at=st.none() | _TIME,
    ),
    _event(
        ev.RunControlled,
        id=_TEXT,
        action=st.sampled_from(typing.get_args(ev.ControlAction)),
        node=st.none() | _ID,
        from_start=st.booleans(),
        reason=_TEXT,
        input=_JSON,
    ),
    _event(ev.RunSignalled, id=_TEXT, node=_ID, payload=_JSON),
    _event(
        ev.StepProgress,
        node=_ID,
        index=st.none() | st.integers(0, 100),
        percent=st.floats(0, 100),
        message=_TEXT,
    ),
    _event(
        ev.WaitsStarted,
        waits=st.lists(
            st.builds(
                ev.WaitRef,
                node=_ID,
                kind=st.sampled_from(typing.get_args(ev.WaitKind)),
                signal=_TEXT,
                key=_TEXT,
                due_at=st.none() | _TIME,
            ),
            max_size=3,
        ),
    ),
    _event(ev.WaitEnded, node=_ID, outcome=st.sampled_from(["elapsed", "timeout"])),
    _event(ev.TimedOut, node=st.none() | _ID),
    _event(
        ev.HookCalled,
        point=st.sampled_from(["before_run", "after_run", "before_node", "after_node"]),
        node=st.none() | _ID,
        call=_TEXT,
        error=st.none() | _ERRORS,
    ),
    _event(ev.TaskStarted, task=_TASKS, replica=_TEXT, ray_node=_TEXT),
    _event(ev.TaskCompleted, task=_TASKS, output=_PAYLOADS, execution=_EXECUTIONS),
    _event(ev.TaskFailed, task=_TASKS, error=_ERRORS, execution=_EXECUTIONS),
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a busy machine
@given(_EVENTS)
def test_any_history_event_round_trips(event: Any) -> None:
    _assert_round_trips(event)
