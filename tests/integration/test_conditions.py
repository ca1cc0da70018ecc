"""Conditions, error branches and continueOn, end to end on the real Ray and nats-server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import pytest

import actorflow
from actorflow import DefinitionError, NodeStatus, RunStatus, WorkflowBuilder
from actorflow.actors.run.history import replay
from actorflow.actors.store.streams import read_stream
from actorflow.definitions import events as ev

TIMEOUT = 120


async def _history_and_node_events(
    url: str, run_id: str, expected_events: int
) -> tuple[list[ev.HistoryEvent], list[tuple[str, str]]]:
    """The run's history, and its node events once `expected_events` of them are stored
    (they are published after the deciding event, so they may trail the run's end)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        history = [rec.event for rec in await replay(js, run_id)]
        deadline = time.monotonic() + 30
        while True:
            events = [
                ev.decode(ev.NodeLifecycle, msg.data)
                async for msg in read_stream(
                    js, ev.STREAM_EVENTS, ev.node_events_filter(run_id=run_id)
                )
            ]
            if len(events) >= expected_events or time.monotonic() > deadline:
                return history, [(e.node, e.status) for e in events]
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


def _scheduled_nodes(history: list[ev.HistoryEvent]) -> set[str]:
    return {t.node for e in history if isinstance(e, ev.TasksScheduled) for t in e.tasks}


def _if_else() -> actorflow.Workflow:
    b = WorkflowBuilder("if-else", version="1")
    n = b.input("n", type="integer")
    check = b.node("check", "echo@1", inputs={"value": n})
    big = b.node(
        "big", "add@1", inputs={"a": check.output, "b": 1000}, when="${{ nodes.check.output > 10 }}"
    )
    small = b.node(
        "small", "add@1", inputs={"a": check.output, "b": 1}, when="${{ nodes.check.output <= 10 }}"
    )
    after_big = b.node("after_big", "echo@1", inputs={"value": big.output})
    join = b.node(
        "join",
        "echo@1",
        inputs={"value": {"big": big.output, "small": small.output}},
        needs=[after_big],
    )
    b.output("join", join.output)
    b.output("branch", big.status)
    return b.build()


@pytest.mark.parametrize(("n", "taken", "passed_over"), [(3, "small", "big"), (30, "big", "small")])
def test_if_else_runs_one_branch_skips_the_other_and_joins(
    client: actorflow.Client, n: int, taken: str, passed_over: str
) -> None:
    wf = _if_else()
    client.apply(wf)
    run = client.run(wf.metadata.name, {"n": n}, version="1")
    result = run.result(timeout=TIMEOUT)
    expected = {"big": n + 1000, "small": None} if taken == "big" else {"big": None, "small": n + 1}
    assert result["join"] == expected
    assert result["branch"] == ("SUCCEEDED" if taken == "big" else "SKIPPED")
    statuses = {i.node: i.status for i in run.nodes()}
    assert statuses[taken] is NodeStatus.SUCCEEDED
    assert statuses[passed_over] is NodeStatus.SKIPPED
    # after_big runs only under big: skipped with it, or run with it
    assert statuses["after_big"] is (NodeStatus.SUCCEEDED if taken == "big" else NodeStatus.SKIPPED)
    skipped = {node for node, s in statuses.items() if s is NodeStatus.SKIPPED}
    history, events = asyncio.run(
        _history_and_node_events(client.nats_url, run.run_id, 2 * (5 - len(skipped)) + len(skipped))
    )
    assert not (_scheduled_nodes(history) & skipped)  # no task was ever published for them
    for node in skipped:
        assert (node, "skipped") in events
        assert (node, "started") not in events
    assert ("join", "succeeded") in events


def test_an_error_branch_handles_a_failure_and_the_run_succeeds(client: actorflow.Client) -> None:
    b = WorkflowBuilder("error-branch", version="1")
    load = b.node(
        "load",
        "coded-fail@1",
        inputs={"code": "DB_DOWN", "message": "primary is down"},
        retry={"max_attempts": 1},
    )
    use = b.node("use", "echo@1", inputs={"value": load.output})
    handle = b.node(
        "handle",
        "echo@1",
        needs=[load.on("failed")],
        inputs={"value": "${{ nodes.load.error.code + ': ' + nodes.load.error.message }}"},
    )
    b.output("handled", handle.output)
    b.output("used", use.output)
    wf = b.build()
    client.apply(wf)
    run = client.run(wf.metadata.name, version="1")
    assert run.result(timeout=TIMEOUT) == {"handled": "DB_DOWN: primary is down", "used": None}
    record = run.status()
    assert record.status is RunStatus.SUCCEEDED
    statuses = {i.node: i.status for i in run.nodes()}
    assert statuses == {
        "load": NodeStatus.FAILED,
        "use": NodeStatus.SKIPPED,
        "handle": NodeStatus.SUCCEEDED,
    }


def test_continue_on_failed_lets_the_next_node_run(client: actorflow.Client) -> None:
    b = WorkflowBuilder("continue-on", version="1")
    flaky = b.node(
        "optional",
        "fail@1",
        inputs={"message": "not today"},
        retry={"max_attempts": 1},
        continue_on="failed",
    )
    after = b.node("after", "echo@1", inputs={"value": flaky.status})
    b.output("seen", after.output)
    wf = b.build()
    client.apply(wf)
    run = client.run(wf.metadata.name, version="1")
    assert run.result(timeout=TIMEOUT) == {"seen": "FAILED"}


def test_a_bad_condition_is_refused_at_apply_and_changes_nothing(
    client: actorflow.Client, tmp_path: Path
) -> None:
    good = _if_else()
    client.apply(good)
    before = [w for w in client.workflows() if w.metadata.name == "if-else"]
    head = """apiVersion: actorflow/v1
kind: Workflow
metadata: {name: if-else, version: "2"}
spec:
  nodes:
    - id: a
      function: echo@1
    - id: b
      function: echo@1
"""
    cases = {
        "needs: [{node: a, on: sometimes}]": "10: spec.nodes[1].needs[0].on",
        'when: "${{ nodes.a.output > }}"': "10: spec.nodes[1].when",
        "needs: [{node: zz, on: failed}]": "10: spec.nodes[1].needs[0]: needs unknown node 'zz'",
    }
    for i, (line, where) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(head + "      " + line + "\n")
        with pytest.raises(DefinitionError) as caught:
            client.apply(path)
        assert f"{path}:{where}" in str(caught.value)
    after = [w for w in client.workflows() if w.metadata.name == "if-else"]
    assert after == before
