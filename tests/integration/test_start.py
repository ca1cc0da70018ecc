"""Starting runs: the NATS request path, its refusals, and a start that was cut short."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest

import actorflow
from actorflow import NotFoundError, RunStatus, WorkflowBuilder
from actorflow.actors.run.history import replay
from actorflow.definitions import events as ev
from actorflow.definitions.snapshot import run_started

TIMEOUT = 120


def _workflow(name: str) -> actorflow.Workflow:
    b = WorkflowBuilder(name, version="1")
    x = b.input("x", type="integer")
    s = b.node("s", "add@1", inputs={"a": x, "b": 1})
    b.output("y", s.output)
    return b.build()


async def _request(url: str, payload: bytes) -> dict[str, Any]:
    nc = await nats.connect(url)
    try:
        msg = await nc.request(ev.START_SUBJECT, payload, timeout=30)
        reply: dict[str, Any] = json.loads(msg.data)
        return reply
    finally:
        await nc.close()


async def _events(url: str, run_id: str) -> list[ev.HistoryEvent]:
    nc = await nats.connect(url)
    try:
        return [rec.event for rec in await replay(nc.jetstream(), run_id)]
    finally:
        await nc.close()


def test_a_start_request_repeated_with_one_run_id_starts_one_run(client: actorflow.Client) -> None:
    wf = _workflow("start-over-nats")
    client.apply(wf)
    start = ev.StartRunRequest(run_id="start-over-nats-once", workflow="start-over-nats")
    request = ev.encode(start.model_copy(update={"inputs": {"x": 4}}))
    first = asyncio.run(_request(client.nats_url, request))
    again = asyncio.run(_request(client.nats_url, request))
    assert (first["ok"], first["run_id"]) == (True, "start-over-nats-once")
    assert (again["ok"], again["run_id"]) == (True, "start-over-nats-once")
    run = client.get_run("start-over-nats-once")
    assert run.result(timeout=TIMEOUT) == {"y": 5}
    events = asyncio.run(_events(client.nats_url, run.run_id))
    assert sum(isinstance(e, ev.RunStarted) for e in events) == 1
    completed = [e for e in events if isinstance(e, ev.TaskCompleted)]
    assert [e.task.node for e in completed] == ["s"]


def test_refused_and_malformed_start_requests_say_why(client: actorflow.Client) -> None:
    unknown = ev.encode(ev.StartRunRequest(run_id="nobody-1", workflow="no-such-workflow"))
    reply = asyncio.run(_request(client.nats_url, unknown))
    assert (reply["type"], reply["ok"], reply["error_type"]) == (
        "StartRunReply",
        False,
        "NotFoundError",
    )
    assert "no-such-workflow" in reply["error"]
    garbage = asyncio.run(_request(client.nats_url, b"\xff not json"))
    assert (garbage["ok"], garbage["error_type"]) == (False, "DecodeError")
    # The SDK repeats a refused start over Ray and raises the controller's own error.
    with pytest.raises(NotFoundError):
        client.run("no-such-workflow")
    assert asyncio.run(_events(client.nats_url, "nobody-1")) == []


def test_a_start_cut_short_after_its_first_event_is_driven_when_repeated(
    client: actorflow.Client,
) -> None:
    """A starter that died between recording `RunStarted` and handing the run over left a
    run nobody drives: starting the same id again drives it (and starts nothing twice)."""
    wf = _workflow("start-cut-short")
    client.apply(wf)
    specs = {f.ref: f for f in client.functions() if f.ref == "add@1"}
    run_id = "start-cut-short-1"
    started = run_started(run_id, wf, specs, {"x": 10})

    async def record_only_the_first_event() -> None:
        nc = await nats.connect(client.nats_url)
        try:
            await nc.jetstream().publish(
                ev.run_subject(run_id, ev.DECISIONS),
                ev.encode(started),
                headers={
                    ev.EXPECTED_LAST_SUBJECT_SEQ: "0",
                    ev.MSG_ID: ev.decision_msg_id(run_id, 0),
                },
            )
        finally:
            await nc.close()

    asyncio.run(record_only_the_first_event())
    run = client.run(wf.metadata.name, {"x": 10}, run_id=run_id)
    assert run.result(timeout=TIMEOUT) == {"y": 11}
    assert run.status().status is RunStatus.SUCCEEDED
    events = asyncio.run(_events(client.nats_url, run_id))
    assert sum(isinstance(e, ev.RunStarted) for e in events) == 1
    assert [e.task.node for e in events if isinstance(e, ev.TaskCompleted)] == ["s"]
