"""Single-step debugging on the real engine: breakpoints, overrides, step, continue."""

from __future__ import annotations

import contextlib
import json
import time

import actorflow
from actorflow import RunStatus, WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ControlError

TIMEOUT = 120


def _chain(name: str) -> actorflow.Workflow:
    """a = 1 + 2, b = a + 10, c = b + 100."""
    b = WorkflowBuilder(name, version="1")
    a = b.node("a", "add@1", inputs={"a": 1, "b": 2})
    bb = b.node("b", "add@1", inputs={"a": a.output, "b": 10})
    c = b.node("c", "add@1", inputs={"a": bb.output, "b": 100})
    b.output("out", c.output)
    return b.build()


def _start(client: actorflow.Client, wf: actorflow.Workflow, **kw: object) -> actorflow.Run:
    client.apply(wf)
    return client.run(wf.metadata.name, {}, version=wf.metadata.version, **kw)  # type: ignore[arg-type]


def _paused_at(run: actorflow.Run, node: str) -> list[ev.BreakpointHit]:
    """The run's breakpoint hits once it is paused at `node` (bounded)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(ControlError):
            hits = run.paused_at()
            if hits[0].node == node:
                return hits
        time.sleep(0.05)
    raise AssertionError(f"{run.run_id} never paused at {node}: {run.status().status}")


def _statuses(run: actorflow.Run) -> dict[str, str]:
    return {n.key: n.status for n in run.nodes()}


def test_break_override_step_continue(client: actorflow.Client, wait_status) -> None:  # type: ignore[no-untyped-def]
    run = _start(client, _chain("dbg-chain"), break_before=["b"])
    record = wait_status(run, RunStatus.PAUSED, TIMEOUT)
    assert record.reason is ev.StopReason.BREAKPOINT
    assert record.node == "b"
    assert run.paused_at() == [ev.BreakpointHit(node="b", inputs={"a": 3, "b": 10})]
    assert _statuses(run) == {"a": "SUCCEEDED", "b": "PENDING", "c": "PENDING"}  # no task

    run.override("b", {"b": 1000})
    assert run.paused_at() == [ev.BreakpointHit(node="b", inputs={"a": 3, "b": 1000})]
    run.step()  # b runs with the override, then the run stops before c
    assert _paused_at(run, "c") == [ev.BreakpointHit(node="c", inputs={"a": 1003, "b": 100})]
    assert _statuses(run)["b"] == "SUCCEEDED"

    run.continue_()
    assert run.result(timeout=TIMEOUT) == {"out": 1103}


def test_break_after_and_set_on_a_paused_run(client: actorflow.Client, wait_status) -> None:  # type: ignore[no-untyped-def]
    run = _start(client, _chain("dbg-after"), break_before=["a"])
    wait_status(run, RunStatus.PAUSED, TIMEOUT)
    assert run.paused_at() == [ev.BreakpointHit(node="a", inputs={"a": 1, "b": 2})]
    run.break_at("b", after=True)
    run.continue_()
    assert _paused_at(run, "b") == [ev.BreakpointHit(node="b", position="after", output=13)]
    assert _statuses(run)["c"] == "PENDING"
    run.continue_()
    assert run.result(timeout=TIMEOUT) == {"out": 113}


def test_cli_debug_session(client: actorflow.Client, cli, wait_status) -> None:  # type: ignore[no-untyped-def]
    wf = _chain("dbg-cli")
    client.apply(wf)
    started = cli("run", "dbg-cli", "--break-before", "c")
    assert started.returncode == 0, started.stderr
    run = client.get_run(started.stdout.strip())
    wait_status(run, RunStatus.PAUSED, TIMEOUT)
    shown = cli("debug", "show", run.run_id)
    assert shown.returncode == 0, shown.stderr
    assert "paused before c" in shown.stdout
    assert json.loads(shown.stdout.split("inputs:", 1)[1]) == {"a": 13, "b": 100}
    changed = cli("debug", "override", run.run_id, "c", "--input", "b=5")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout.split("inputs:", 1)[1]) == {"a": 13, "b": 5}
    go = cli("debug", "continue", run.run_id)
    assert go.returncode == 0, go.stderr
    assert run.result(timeout=TIMEOUT) == {"out": 18}


def test_bad_debug_requests_are_one_line_errors(client: actorflow.Client, cli) -> None:  # type: ignore[no-untyped-def]
    wf = _chain("dbg-bad")
    client.apply(wf)
    unknown = cli("run", "dbg-bad", "--break-before", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "error: workflow dbg-bad has no node 'nope' to break at (nodes: a, b, c)"
    ]
    run = client.run("dbg-bad", {}, version="1", break_before=["a"])
    _paused_at(run, "a")
    refused = cli("runs", "break", run.run_id, "nope")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: run {run.run_id}: workflow dbg-bad has no node 'nope' to break at (nodes: a, b, c)"
    ]
    run.continue_()
    assert run.result(timeout=TIMEOUT) == {"out": 113}
    for args in (("debug", "show", run.run_id), ("debug", "step", run.run_id)):
        not_paused = cli(*args)
        assert not_paused.returncode == 1
        assert not_paused.stderr.strip().splitlines() == [
            f"error: run {run.run_id} is not paused at a breakpoint (it is SUCCEEDED)"
        ]
