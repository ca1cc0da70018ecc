"""The wire contract: names land where the streams and the reserved-space checks expect,
every message carries ``type`` and ``v`` and still decodes without them, error codes are one
enum."""

from __future__ import annotations

import inspect
import pickle
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import actorflow
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ActorflowError, DecodeError, ErrorCode
from actorflow.definitions.events import history, messages, names, values
from actorflow.definitions.models import Trigger
from actorflow.definitions.subjects import (
    INTERNAL,
    OPEN_INTERNAL,
    check_pattern,
    check_trigger_subject,
    covers,
    matches,
    overlap,
)
from actorflow.triggers.store import TriggerRecord

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
TASK = ev.TaskRef(node="fetch", index=3, attempt=2)

# --- names ----------------------------------------------------------------------------------

# Every literal subject the engine publishes on or reads (one per builder).
INTERNAL_SUBJECTS = {
    "decisions": ev.run_subject("r1", ev.DECISIONS),
    "results": ev.result_subject("r1", TASK),
    "started": ev.result_subject("r1", TASK, started=True),
    "remedy": ev.result_subject("r1", TASK.model_copy(update={"remedy": True})),
    "control history": ev.run_subject("r1", ev.CONTROL),
    "progress": ev.run_subject("r1", ev.PROGRESS),
    "control": ev.control_subject("r1"),
    "start": ev.START_SUBJECT,
    "signal": ev.signal_subject("order.paid", "o 17"),
    "log": ev.log_subject("r1", "fetch"),
    "task": ev.task_subject("etl.load", "1.2"),
    "tick": ev.trigger_event_subject("nightly", "tick"),
    "hook": ev.trigger_event_subject("nightly", "hook"),
    "rejected": ev.trigger_event_subject("nightly", "rejected"),
    "idle ingress": ev.IDLE_INGRESS_SUBJECT,
    "queue": ev.queue_subject(ev.queue_name("deploy", "prod cluster.*")),
    "audit": ev.audit_subject("team-a"),
}
INTERNAL_FILTERS = {
    "history": ev.HISTORY_SUBJECTS,
    "tasks": ev.TASK_SUBJECTS,
    "signals": ev.SIGNAL_SUBJECTS,
    "logs": ev.LOG_SUBJECTS,
    "triggers": ev.TRIGGER_SUBJECTS,
    "queues": ev.QUEUE_SUBJECTS,
    "audit log": ev.AUDIT_SUBJECTS,
    "run history": ev.run_history_filter("r1"),
    "run results": ev.results_filter("r1"),
    "run logs": ev.logs_filter("r1"),
    "node logs": ev.logs_filter("r1", "fetch"),
    "controls": ev.control_filter(),
    "trigger events": ev.trigger_events_filter("nightly"),
    "reserved": ev.RESERVED_SUBJECTS,
}
LIFECYCLE = {
    "run event": ev.run_event_subject("etl", "r1", "SUCCEEDED"),
    "node event": ev.node_event_subject("etl", "r1", "fetch", "failed"),
    "events": ev.EVENT_SUBJECTS,
    "run events": ev.RUN_EVENT_SUBJECTS,
    "node events": ev.NODE_EVENT_SUBJECTS,
    "a workflow's runs": ev.run_events_filter("etl"),
    "one run": ev.run_events_filter(run_id="r1"),
    "a status": ev.run_events_filter("etl", status="interrupted"),
    "a node": ev.node_events_filter("etl", node="fetch", status="succeeded"),
}
# What each engine stream captures (AF_INGRESS captures trigger subjects, never these).
STREAMS = {
    ev.STREAM_HISTORY: ev.HISTORY_SUBJECTS,
    ev.STREAM_TASKS: ev.TASK_SUBJECTS,
    ev.STREAM_EVENTS: ev.EVENT_SUBJECTS,
    ev.STREAM_SIGNALS: ev.SIGNAL_SUBJECTS,
    ev.STREAM_TRIGGERS: ev.TRIGGER_SUBJECTS,
    ev.STREAM_LOGS: ev.LOG_SUBJECTS,
    ev.STREAM_QUEUES: ev.QUEUE_SUBJECTS,
    ev.STREAM_AUDIT: ev.AUDIT_SUBJECTS,
}


@pytest.mark.parametrize("subject", sorted({**INTERNAL_SUBJECTS, **INTERNAL_FILTERS}.values()))
def test_internal_names_are_reserved_and_refused_to_triggers(subject: str) -> None:
    assert check_pattern(subject) is None
    assert covers(ev.RESERVED_SUBJECTS, subject)
    assert any(overlap(internal, subject) for internal in INTERNAL)
    problem = check_trigger_subject(subject)
    assert problem is not None
    assert "internal subjects" in problem


@pytest.mark.parametrize("subject", sorted(LIFECYCLE.values()))
def test_lifecycle_names_are_the_open_part_of_the_reserved_space(subject: str) -> None:
    assert check_pattern(subject) is None
    assert covers(ev.RESERVED_SUBJECTS, subject)
    assert covers(OPEN_INTERNAL, subject)
    assert check_trigger_subject(subject) is None


def test_the_reserved_space_checks_use_the_contracts_names() -> None:
    assert INTERNAL == (ev.RESERVED_SUBJECTS,)
    assert OPEN_INTERNAL == ev.EVENT_SUBJECTS


@pytest.mark.parametrize("name", sorted(INTERNAL_SUBJECTS))
def test_every_literal_subject_lands_in_exactly_its_stream(name: str) -> None:
    subject = INTERNAL_SUBJECTS[name]
    captured = [stream for stream, pattern in STREAMS.items() if matches(pattern, subject)]
    expected = {
        "control": [],  # request/reply, not stored
        "start": [],  # request/reply, not stored
        "idle ingress": [],  # AF_INGRESS's placeholder: no other stream may capture it
        "signal": [ev.STREAM_SIGNALS],
        "log": [ev.STREAM_LOGS],
        "task": [ev.STREAM_TASKS],
        "tick": [ev.STREAM_TRIGGERS],
        "hook": [ev.STREAM_TRIGGERS],
        "rejected": [ev.STREAM_TRIGGERS],
        "queue": [ev.STREAM_QUEUES],
        "audit": [ev.STREAM_AUDIT],
    }.get(name, [ev.STREAM_HISTORY])
    assert captured == expected


def test_lifecycle_subjects_land_in_the_events_stream_only() -> None:
    for subject in (LIFECYCLE["run event"], LIFECYCLE["node event"]):
        assert [s for s, p in STREAMS.items() if matches(p, subject)] == [ev.STREAM_EVENTS]


def test_filters_match_what_their_builders_build() -> None:
    result = ev.result_subject("r1", TASK)
    assert ev.result_subject("r1", TASK) == "af.run.r1.r.fetch.3.2"
    assert matches(ev.results_filter("r1"), result)
    assert matches(ev.run_history_filter("r1"), result)
    assert matches(ev.run_history_filter("r1"), ev.run_subject("r1", ev.DECISIONS))
    assert not matches(ev.run_history_filter("r2"), result)
    assert matches(ev.control_filter(), ev.control_subject("r1"))
    assert ev.parse_control_subject(ev.control_subject("r1")) == "r1"
    assert matches(ev.logs_filter("r1"), ev.log_subject("r1", "a"))
    assert matches(ev.logs_filter("r1", "a"), ev.log_subject("r1", "a"))
    assert not matches(ev.logs_filter("r1", "a"), ev.log_subject("r1", "b"))
    assert matches(ev.trigger_events_filter("t"), ev.trigger_event_subject("t", "tick"))
    assert not matches(ev.trigger_events_filter("t"), ev.trigger_event_subject("u", "tick"))


def test_lifecycle_filters_and_parsing() -> None:
    subject = ev.run_event_subject("etl", "r1", "SUCCEEDED")
    assert subject == "af.events.run.etl.r1.succeeded"
    for pattern in (
        ev.RUN_EVENT_SUBJECTS,
        ev.run_events_filter(),
        ev.run_events_filter("etl"),
        ev.run_events_filter(run_id="r1"),
        ev.run_events_filter(status="succeeded"),
        ev.run_events_filter("etl", "r1", "SUCCEEDED"),
    ):
        assert matches(pattern, subject), pattern
    assert not matches(ev.run_events_filter("other"), subject)
    assert not matches(ev.NODE_EVENT_SUBJECTS, subject)
    assert ev.run_events_filter(run_id="r1") == "af.events.run.*.r1.*"  # AsyncRun.wait's
    assert ev.parse_run_event_subject(subject) == ("etl", "r1", "succeeded")
    assert ev.parse_run_event_subject(ev.node_event_subject("etl", "r1", "n", "failed")) is None
    node = ev.node_event_subject("etl", "r1", "fetch", "FAILED")
    assert matches(ev.node_events_filter("etl", node="fetch"), node)
    assert matches(ev.node_events_filter(run_id="r1", status="failed"), node)
    assert not matches(ev.node_events_filter(node="other"), node)
    assert not matches(ev.RUN_EVENT_SUBJECTS, node)


def test_signals_and_wait_keys() -> None:
    subject = ev.signal_subject("order.paid", "o 17")
    assert subject == "af.signal.order_paid.o_17"
    signal, key = ev.parse_signal_subject(subject)
    # The router finds the waits by the subject's tokens; the wait registered them raw.
    assert ev.wait_key("order.paid", "o 17", "r1", "n").startswith(ev.waits_prefix(signal, key))
    assert ev.waits_prefix("s", "") == "s._."
    assert ev.signal_subject("s", "") == "af.signal.s._"


def test_kv_names() -> None:
    key = ev.definition_key("Function", "load", "1.2")
    assert key.startswith(ev.definitions_prefix("Function"))
    assert key.startswith(ev.definitions_prefix("Function", "load"))
    assert not ev.definition_key("Function", "loader", "1").startswith(
        ev.definitions_prefix("Function", "load")
    )
    subject = ev.kv_subject(ev.KV_DEFINITIONS, key)
    assert matches(ev.kv_filter(ev.KV_DEFINITIONS), subject)
    assert matches(ev.kv_filter(ev.KV_DEFINITIONS, ev.definitions_prefix("Function")), subject)
    assert not matches(ev.kv_filter(ev.KV_DEFINITIONS, ev.definitions_prefix("Workflow")), subject)
    assert ev.kv_key(ev.KV_DEFINITIONS, subject) == key
    assert ev.kv_stream(ev.KV_RUNS) == "KV_AF_RUNS"
    assert ev.kv_filter(ev.KV_RUNS) == "$KV.AF_RUNS.>"
    for build, family in (
        (ev.trigger_key, ev.TRIGGER_KEYS),
        (ev.event_type_key, ev.EVENT_TYPE_KEYS),
        (ev.stats_key, ev.STATS_KEYS),
    ):
        prefix = ev.trigger_keys_prefix(family)
        stored = ev.kv_subject(ev.KV_TRIGGERS, build("nightly"))
        assert matches(ev.kv_filter(ev.KV_TRIGGERS, prefix), stored)
        assert ev.kv_key(ev.KV_TRIGGERS, stored, prefix) == "nightly"
    assert ev.trigger_key("nightly") == "trigger.nightly"
    assert ev.event_type_key("order") == "eventtype.order"
    assert ev.stats_key("nightly") == "stats.nightly"


def test_message_ids() -> None:
    assert ev.decision_msg_id("r1", 0) == "r1.d.0"
    assert ev.decision_msg_id("r1", 7, "inc") == "r1.d.7.inc"
    scheduled = ev.TaskScheduled(
        run_id="r1",
        workflow="w",
        task=TASK,
        function="f",
        version="1",
        inputs=ev.Payload(inline=1),
    )
    assert ev.result_msg_id(scheduled.idempotency_key) == "r1.fetch[3].2.result"
    assert ev.signal_event_id("r1", "n", 4) == "r1.n.signal.4"
    assert ev.tick_msg_id("t", AT) == f"t:{AT.isoformat()}"
    assert ev.webhook_msg_id("t", "d1") == "t:d1"
    assert ev.log_batch_msg_id("abc", 2) == "abc.2"
    assert ev.queue_entry_id("r1", 0) == "r1.0"
    assert ev.queue_msg_id(ev.queue_entry_id("r1", 2), "release") == "r1.2.release"


@settings(deadline=None)  # a busy, shared machine
@given(st.text(max_size=30), st.text(max_size=300), st.text(max_size=30), st.text(max_size=300))
def test_any_group_and_key_make_one_safe_queue_subject_of_their_own(
    group: str, key: str, other_group: str, other_key: str
) -> None:
    """A key is user data (a cluster name, a path, "*"): hashed, it is always one token,
    and (group, key) pairs do not share queues — not even by joining differently."""
    subject = ev.queue_subject(ev.queue_name(group, key))
    assert check_pattern(subject) is None
    assert matches(ev.QUEUE_SUBJECTS, subject)
    assert len(subject.split(".")) == 3
    if (group, key) != (other_group, other_key) and "\n" not in group + other_group:
        assert ev.queue_name(group, key) != ev.queue_name(other_group, other_key)


_ANY_TEXT = st.text(min_size=0, max_size=20)


@given(_ANY_TEXT, _ANY_TEXT)
def test_any_signal_and_key_make_one_valid_internal_subject(signal: str, key: str) -> None:
    subject = ev.signal_subject(signal, key)
    assert check_pattern(subject) is None or signal == ""
    assert matches(ev.SIGNAL_SUBJECTS, subject) or signal == ""
    if signal:
        parsed = ev.parse_signal_subject(subject)
        assert ev.wait_key(signal, key, "r", "n").startswith(ev.waits_prefix(*parsed))


@given(_ANY_TEXT.filter(bool), _ANY_TEXT.filter(bool))
def test_any_function_and_version_make_one_task_subject(function: str, version: str) -> None:
    subject = ev.task_subject(function, version)
    assert check_pattern(subject) is None
    assert len(subject.split(".")) == 4
    assert matches(ev.TASK_SUBJECTS, subject)
    assert check_trigger_subject(subject) is not None


def test_no_af_subject_is_spelled_outside_the_contract() -> None:
    allowed: set[Path] = set()
    literal = re.compile(r"""f?["'](af\.|\$KV\.|KV_)""")
    offenders = []
    for folder in ("sdk", "definitions", "runtime_envs", "actors", "triggers", "cluster"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.parent == ROOT / "definitions" / "events" or path in allowed:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if literal.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_package_re_exports_every_public_name() -> None:
    for module in (names, values, history, messages):
        public = {
            n for n, v in vars(module).items() if not n.startswith("_") and _defined_in(v, module)
        }
        assert public <= set(ev.__all__), module.__name__
    for name in ev.__all__:
        assert hasattr(ev, name), name


def _defined_in(value: Any, module: Any) -> bool:
    if inspect.isclass(value) or inspect.isfunction(value):
        return value.__module__ == module.__name__
    return isinstance(value, str | int) and not isinstance(value, bool)


# --- messages -------------------------------------------------------------------------------
ERROR = ev.ErrorInfo(code=ErrorCode.TIMEOUT, message="too slow")
EXECUTION = ev.Execution(started_at=AT, finished_at=AT)
TRIGGER = Trigger.model_validate(
    {
        "apiVersion": "actorflow/v1",
        "kind": "Trigger",
        "metadata": {"name": "nightly"},
        "spec": {"workflow": "etl", "source": {"schedule": {"cron": "0 3 * * *"}}},
    }
)
SAMPLES: dict[type[ev.Message], dict[str, Any]] = {
    ev.RunStarted: {
        "run_id": "r1",
        "workflow": "w",
        "version": "1",
        "plan": {},
        "functions": {},
        "inputs": {},
    },
    ev.RunClaimed: {"run_id": "r1", "incarnation": "i"},
    ev.RunAdmitted: {"run_id": "r1", "episode": 0, "seq": 7},
    ev.QueueEntry: {"op": "enqueue", "entry": "r1.0", "run_id": "r1", "limit": 2, "key": "k"},
    ev.TasksScheduled: {"run_id": "r1", "tasks": [TASK]},
    ev.HookCalled: {"run_id": "r1", "point": "before", "call": "h"},
    ev.RunStopped: {"run_id": "r1", "status": ev.RunStatus.SUCCEEDED},
    ev.RunControlled: {"run_id": "r1", "id": "c1", "action": "pause"},
    ev.RunSignalled: {"run_id": "r1", "id": "s1", "node": "n"},
    ev.StepProgress: {"run_id": "r1", "node": "n", "percent": 50},
    ev.WaitsStarted: {"run_id": "r1", "waits": [ev.WaitRef(node="n", kind="sleep")]},
    ev.WaitEnded: {"run_id": "r1", "node": "n", "outcome": "elapsed"},
    ev.TimedOut: {"run_id": "r1", "node": "n"},
    ev.TaskStarted: {"run_id": "r1", "task": TASK},
    ev.TaskCompleted: {
        "run_id": "r1",
        "task": TASK,
        "output": ev.Payload(inline=1),
        "execution": EXECUTION,
    },
    ev.TaskFailed: {"run_id": "r1", "task": TASK, "error": ERROR, "execution": EXECUTION},
    ev.TaskScheduled: {
        "run_id": "r1",
        "workflow": "w",
        "task": TASK,
        "function": "f",
        "version": "1",
        "inputs": ev.Payload(inline=1),
    },
    ev.LogBatch: {"lines": [ev.LogLine(run_id="r1", node="n", stream="stdout", text="hi")]},
    ev.RunRecord: {
        "run_id": "r1",
        "workflow": "w",
        "version": "1",
        "status": ev.RunStatus.RUNNING,
        "created_at": AT,
        "updated_at": AT,
    },
    ev.RunLifecycle: {
        "run_id": "r1",
        "workflow": "w",
        "version": "1",
        "status": ev.RunStatus.INTERRUPTED,
        "error": ERROR,
    },
    ev.NodeLifecycle: {
        "run_id": "r1",
        "workflow": "w",
        "version": "1",
        "node": "n",
        "status": "failed",
    },
    ev.ScheduleTick: {"trigger": "t", "instant": AT},
    ev.TriggerStats: {"name": "t", "seen": 3},
    ev.ControlRequest: {"action": "retry", "node": "n"},
    ev.ControlReply: {"ok": False, "error": "no"},
    ev.StartRunRequest: {"run_id": "etl-1", "workflow": "etl", "inputs": {"n": 1}},
    ev.StartRunReply: {"ok": False, "run_id": "etl-1", "error_type": "NotFoundError"},
    ev.WaitRegistration: {"run_id": "r1", "node": "n", "json_schema": {"type": "object"}},
    TriggerRecord: {"trigger": TRIGGER, "stream": ev.STREAM_TRIGGERS},
}


def _all_messages() -> set[type[ev.Message]]:
    found: set[type[ev.Message]] = set()
    todo = [ev.Message]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if "type" in sub.model_fields:
                found.add(sub)
    return found


def test_every_message_has_a_sample_here() -> None:
    assert _all_messages() == set(SAMPLES)


@pytest.mark.parametrize("model", sorted(SAMPLES, key=lambda m: m.__name__))
def test_every_message_has_type_and_v(model: type[ev.Message]) -> None:
    assert model.model_fields["type"].default == model.__name__
    assert get_args(model.model_fields["type"].annotation) == (model.__name__,)
    assert model.model_fields["v"].default == ev.SCHEMA_VERSION
    message = model(**SAMPLES[model])
    data = ev.encode(message)
    assert ev.decode(model, data) == message
    raw = message.model_dump(mode="json", by_alias=True)
    assert raw["type"] == model.__name__
    assert raw["v"] == ev.SCHEMA_VERSION
    assert model.model_config.get("frozen")


@pytest.mark.parametrize("model", sorted(SAMPLES, key=lambda m: m.__name__))
def test_a_message_written_before_type_and_v_still_decodes(model: type[ev.Message]) -> None:
    message = model(**SAMPLES[model])
    old = message.model_dump(mode="json")
    del old["type"], old["v"]
    again = ev.decode(model, ev.encode(model.model_validate(old)))
    assert again == message


def test_history_union_is_every_history_event() -> None:
    events = {m for m in _all_messages() if issubclass(m, history._Event)}
    union = set(get_args(get_args(ev.HistoryEvent)[0]))
    assert union == events
    for model in events:
        decoded = ev.decode_history(ev.encode(model(**SAMPLES[model])))
        assert type(decoded) is model


def test_old_bytes_of_every_kv_value_decode() -> None:
    record = ev.decode(
        ev.RunRecord,
        b'{"run_id":"r1","workflow":"w","version":"1","status":"RUNNING",'
        b'"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00Z"}',
    )
    assert (record.type, record.v) == ("RunRecord", 1)
    wait = ev.decode(ev.WaitRegistration, b'{"run_id":"r1","node":"n","schema":{"type":"object"}}')
    assert wait.json_schema == {"type": "object"}
    assert b'"schema":{"type":"object"}' in ev.encode(wait)  # the field keeps its wire name
    assert ev.decode(ev.ControlRequest, b'{"action":"pause"}').action == "pause"


def test_a_control_request_becomes_a_run_controlled_event() -> None:
    request = ev.ControlRequest(action="retry", node="n", reason="again")
    event = ev.RunControlled.of(request, run_id="r1", id="c1")
    assert event.type == "RunControlled"
    assert (event.action, event.node, event.reason) == ("retry", "n", "again")
    assert type(ev.decode_history(ev.encode(event))) is ev.RunControlled


def test_a_new_run_id_names_its_workflow_and_is_a_subject_token() -> None:
    ids = {ev.new_run_id("etl") for _ in range(100)}
    assert len(ids) == 100
    for run_id in ids:
        assert run_id.startswith("etl-")
        assert check_pattern(ev.run_subject(run_id, ev.DECISIONS)) is None


def test_control_replies() -> None:
    ok = ev.ControlReply.accepted("r1", "pause", "c1")
    assert (ok.ok, ok.run_id, ok.action, ok.id, ok.error) == (True, "r1", "pause", "c1", None)
    refused = ev.decode(ev.ControlReply, ev.encode(ev.ControlReply.refused("it is PAUSED")))
    assert (refused.ok, refused.error) == (False, "it is PAUSED")
    # What the controller answers today (a bare dict) reads as a reply.
    assert ev.decode(ev.ControlReply, b'{"ok": true, "run_id": "r1", "id": "c1"}').ok


def test_decode_errors_are_typed() -> None:
    assert issubclass(ev.DecodeError, ActorflowError)
    assert ev.DecodeError is DecodeError
    with pytest.raises(DecodeError, match="not a RunRecord"):
        ev.decode(ev.RunRecord, b"{}")
    with pytest.raises(DecodeError, match="not a history event"):
        ev.decode_history(b'{"type": "Nope", "run_id": "r1"}')
    with pytest.raises(DecodeError):
        ev.decode(ev.ControlRequest, b"not json")


# --- error codes ------------------------------------------------------------------------------
@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_codes_round_trip(code: ErrorCode) -> None:
    assert code.value == code.name
    assert ErrorCode(str(code)) is code
    failed = ev.TaskFailed(
        run_id="r1", task=TASK, error=ev.ErrorInfo(code=code, message="m"), execution=EXECUTION
    )
    info = ev.decode(ev.TaskFailed, ev.encode(failed)).error
    assert type(info.code) is str  # a plain string on the wire
    assert info.code == code
    assert ErrorCode(info.code) is code
    assert pickle.loads(pickle.dumps(code)) is code


def test_error_codes_are_exported_and_documented() -> None:
    assert actorflow.ErrorCode is ErrorCode
    source = inspect.getsource(ErrorCode)
    members = [line for line in source.splitlines() if re.match(r"\s+[A-Z_]+ = \"", line)]
    assert len(members) == len(ErrorCode)
    assert all("  # " in line for line in members)


def test_engine_codes_are_spelled_only_in_the_enum() -> None:
    spelled = re.compile("|".join(rf"[\"']{c.value}[\"']" for c in ErrorCode))
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("sdk", "actors", "triggers", "cluster", "runtime_envs", "definitions")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "errors.py" and spelled.search(path.read_text())
    ]
    assert offenders == []


def test_a_handler_code_is_no_engine_code() -> None:
    with pytest.raises(ValueError, match="DB_DOWN"):
        ErrorCode("DB_DOWN")


@pytest.mark.parametrize(
    "run_id", ["a.b", "a b", "x>", "a*", "", "x" * 129, "run\n1", "é", "a/b", "$KV"]
)
def test_a_run_id_that_would_break_a_subject_is_refused_in_a_start(run_id: str) -> None:
    assert ev.run_id_problem(run_id) is not None
    data = ev.encode(ev.StartRunRequest.model_construct(run_id=run_id, workflow="w"))
    with pytest.raises(ev.DecodeError):
        ev.decode(ev.StartRunRequest, data)


@given(st.from_regex(ev.RUN_ID_PATTERN, fullmatch=True))
def test_every_accepted_run_id_is_one_subject_token(run_id: str) -> None:
    assert ev.run_id_problem(run_id) is None
    subject = ev.run_subject(run_id, ev.DECISIONS)
    assert subject.split(".") == ["af", "run", run_id, ev.DECISIONS]
    assert ev.run_id_problem(ev.new_run_id("wf")) is None  # the ids the SDK makes
