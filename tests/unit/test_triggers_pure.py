"""Pure parts of triggers: subjects, schedules and missed runs, filters, mapping, signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from actorflow.definitions.errors import EventRejectedError, ExpressionError
from actorflow.definitions.models import EventType, ScheduleSource, Trigger
from actorflow.definitions.subjects import (
    check_trigger_subject,
    covers,
    matches,
    minimal_cover,
    overlap,
)
from actorflow.triggers import schedule
from actorflow.triggers.evaluate import (
    CompiledTrigger,
    Event,
    lifecycle_subjects,
    run_id_for,
    sign,
    signature_ok,
)


# --- subjects ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.b.d", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("a.b", "a.b.c", False),
    ],
)
def test_matches(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected


def test_overlap_and_cover() -> None:
    assert overlap("a.*", "a.b")
    assert overlap(">", "af.run.x")
    assert not overlap("a.b", "a.c")
    assert not overlap("a.*", "a.b.c")
    assert covers("a.>", "a.*.c")
    assert not covers("a.*", "a.>")
    assert minimal_cover(["a.b", "a.*", "c.>", "c.d.e", "a.*"]) == ["a.*", "c.>"]


tokens = st.sampled_from(["a", "b", "*"])


@given(st.lists(tokens, min_size=1, max_size=4), st.lists(st.sampled_from(["a", "b"]), max_size=4))
def test_a_pattern_covering_another_matches_whatever_it_matches(
    pattern: list[str], subject: list[str]
) -> None:
    p = ".".join(pattern)
    s = ".".join(subject)
    if subject and covers(p, s):
        assert matches(p, s)
    if subject and matches(p, s):
        assert overlap(p, s)


@pytest.mark.parametrize("subject", ["af.run.>", ">", "*.run.x", "af.*", "af.trigger.x.tick"])
def test_internal_subjects_are_refused(subject: str) -> None:
    assert "internal" in (check_trigger_subject(subject) or "")


@pytest.mark.parametrize("subject", ["orders.>", "af.events.run.etl.>", "a.*.c"])
def test_open_subjects_are_allowed(subject: str) -> None:
    assert check_trigger_subject(subject) is None


@pytest.mark.parametrize("subject", ["a..b", "a.b>", "a.>.b", "a b", ""])
def test_malformed_subjects_are_refused(subject: str) -> None:
    assert check_trigger_subject(subject)


# --- schedules --------------------------------------------------------------------------------
T0 = datetime(2026, 3, 28, 23, 0, 0, tzinfo=UTC)


def test_every_is_aligned_and_due_once() -> None:
    src = ScheduleSource(every=60)
    assert schedule.next_after(src, T0 + timedelta(seconds=1)) == T0 + timedelta(minutes=1)
    assert schedule.due(src, T0, T0 + timedelta(seconds=61)) == [T0 + timedelta(minutes=1)]
    assert schedule.due(src, T0 + timedelta(minutes=1), T0 + timedelta(seconds=119)) == []


def test_cron_in_a_time_zone_crosses_daylight_saving() -> None:
    src = ScheduleSource(cron="30 9 * * *", timezone="Europe/Paris")
    first = schedule.next_after(src, T0)  # 29 March 09:30 CEST (UTC+2) after the switch
    assert first == datetime(2026, 3, 29, 7, 30, tzinfo=UTC)
    before = schedule.next_after(src, datetime(2026, 3, 27, 0, 0, tzinfo=UTC))
    assert before == datetime(2026, 3, 27, 8, 30, tzinfo=UTC)  # CET (UTC+1)


@pytest.mark.parametrize(
    ("missed", "expected"),
    [("skip", 0), ("once", 1), ("catchup", 5)],
)
def test_missed_run_policy_after_downtime(missed: str, expected: int) -> None:
    src = ScheduleSource.model_validate({"every": "1h", "missed": missed})
    now = T0 + timedelta(hours=5, minutes=30)  # down for five instants
    fired = schedule.due(src, T0, now)
    assert len(fired) == expected
    assert fired == sorted(fired)
    if fired:
        assert fired[-1] == T0 + timedelta(hours=5)


def test_catchup_is_bounded() -> None:
    src = ScheduleSource.model_validate({"every": "1s", "missed": "catchup", "maxCatchup": 10})
    fired = schedule.due(src, T0, T0 + timedelta(days=7))
    assert len(fired) == 10
    assert fired[-1] == T0 + timedelta(days=7)


@given(
    st.integers(min_value=1, max_value=3600),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**5),
    st.sampled_from(["skip", "once", "catchup"]),
)
def test_due_instants_are_after_the_cursor_and_never_in_the_future(
    every: int, start: int, gap: int, missed: str
) -> None:
    src = ScheduleSource.model_validate({"every": every, "missed": missed, "maxCatchup": 50})
    cursor = T0 + timedelta(seconds=start)
    now = cursor + timedelta(seconds=gap)
    fired = schedule.due(src, cursor, now)
    assert all(cursor < t <= now for t in fired)
    assert len(set(fired)) == len(fired)
    # the next pass, from the newest fired instant, never fires one of these again
    if fired:
        assert not set(schedule.due(src, fired[-1], now)) & set(fired)


def test_schedule_validation() -> None:
    with pytest.raises(ValidationError, match="exactly one of cron, every"):
        ScheduleSource.model_validate({"cron": "* * * * *", "every": 5})
    with pytest.raises(ValidationError, match="not a cron expression"):
        ScheduleSource.model_validate({"cron": "61 * * * *"})
    with pytest.raises(ValidationError, match="unknown time zone"):
        ScheduleSource.model_validate({"every": 5, "timezone": "Nowhere/Land"})


# --- evaluating events ------------------------------------------------------------------------
def _trigger(**spec: object) -> Trigger:
    return Trigger.model_validate(
        {
            "metadata": {"name": "t"},
            "spec": {"workflow": "wf@2", "source": {"subject": "x.y"}, **spec},
        }
    )


def _event(payload: object, **headers: str) -> Event:
    return Event("id-1", "x.y", json.dumps(payload).encode(), headers)


def test_filter_and_mapping() -> None:
    compiled = CompiledTrigger(
        _trigger(
            filter="${{ event.amount >= 10 && headers.Region == 'eu' }}",
            inputs={"order": "${{ event.id }}", "tag": "o-${{ event.id }}", "fixed": 3},
        )
    )
    assert (compiled.workflow, compiled.version) == ("wf", "2")
    ok = _event({"id": "a", "amount": 12}, Region="eu")
    ctx = compiled.context(ok, compiled.payload(ok))
    assert compiled.matches(ctx)
    assert compiled.inputs(ctx) == {"order": "a", "tag": "o-a", "fixed": 3}
    low = _event({"id": "b", "amount": 1}, Region="eu")
    assert not compiled.matches(compiled.context(low, compiled.payload(low)))


def test_filter_must_be_boolean_and_errors_are_typed() -> None:
    compiled = CompiledTrigger(_trigger(filter="event.amount"))
    event = _event({"amount": 3})
    with pytest.raises(ExpressionError, match="true or false"):
        compiled.matches(compiled.context(event, compiled.payload(event)))
    missing = CompiledTrigger(_trigger(filter="event.nope > 1"))
    with pytest.raises(ExpressionError):
        missing.matches(missing.context(event, missing.payload(event)))


def test_a_filter_that_does_not_compile_is_a_definition_error() -> None:
    with pytest.raises(ValidationError, match=r"expression 'event\.x >'"):
        _trigger(filter="event.x >")


def test_payload_rejections() -> None:
    event_type = EventType.model_validate(
        {
            "metadata": {"name": "e"},
            "spec": {"subject": "x.y", "schema": {"type": "object", "required": ["id"]}},
        }
    )
    compiled = CompiledTrigger(_trigger(maxPayload=20, eventType="e"), event_type)
    with pytest.raises(EventRejectedError, match="not_json"):
        compiled.payload(Event("1", "x.y", b"{nope"))
    with pytest.raises(EventRejectedError, match="too_large"):
        compiled.payload(Event("1", "x.y", b'{"id": "' + b"x" * 40 + b'"}'))
    with pytest.raises(EventRejectedError, match="schema"):
        compiled.payload(Event("1", "x.y", b'{"other": 1}'))
    assert compiled.payload(Event("1", "x.y", b'{"id": 1}')) == {"id": 1}


def test_run_ids_are_stable_per_event_and_distinct_across() -> None:
    assert run_id_for("t", "e1") == run_id_for("t", "e1")
    assert run_id_for("t", "e1") != run_id_for("t", "e2")
    assert run_id_for("t", "e1") != run_id_for("u", "e1")
    assert "." not in run_id_for("t", "a.b.c>*")


def test_signatures() -> None:
    body = b'{"a": 1}'
    good = sign("k", body)
    assert signature_ok("k", body, good)
    assert signature_ok("k", body, good.removeprefix("sha256="))
    assert not signature_ok("k", body + b" ", good)
    assert not signature_ok("other", body, good)
    assert not signature_ok("k", body, None)


def test_lifecycle_subjects_and_failed_filter() -> None:
    trigger = Trigger.model_validate(
        {
            "metadata": {"name": "t"},
            "spec": {
                "workflow": "report",
                "source": {"lifecycle": {"workflow": "etl", "on": ["failed"]}},
            },
        }
    )
    source = trigger.spec.source.lifecycle
    assert source is not None
    assert lifecycle_subjects(source) == [
        "af.events.run.etl.*.compensated",
        "af.events.run.etl.*.interrupted",
    ]
    compiled = CompiledTrigger(trigger)
    assert compiled.accepts_lifecycle({"status": "INTERRUPTED", "reason": "failed"})
    assert not compiled.accepts_lifecycle({"status": "INTERRUPTED", "reason": "cancelled"})
