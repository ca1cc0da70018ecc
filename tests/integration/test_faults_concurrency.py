"""Concurrency queues under fire: while runs of one key wait their turn, the run actors
(SIGKILL by pid), the controller (SIGKILL by pid; a fresh client recovers) or nats-server
(SIGKILL, restarted on its store) die. From the ledger the steps write: the runs still ran
one at a time, in start order, each once; from the history: each run was admitted once
and finished once, and no step completed twice; the queue is left empty."""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter
from itertools import pairwise
from pathlib import Path

import faults_support as fs
import pytest
import ray
from nats.js import JetStreamContext

import actorflow
from actorflow.actors.run import queue
from actorflow.definitions import events as ev

RUNS = 8
KEY = "cluster-a"


def _workflow() -> actorflow.Workflow:
    b = actorflow.WorkflowBuilder("fconc", version="1")
    ledger = b.input("ledger", type="string")
    b.input("cluster", type="string")
    x = b.input("x", type="integer")
    b.concurrency("${{ inputs.cluster }}")
    a = b.node("a", "fstep@1", inputs={"path": ledger, "values": [x], "add": 1, "delay": 0.3})
    c = b.node("c", "fstep@1", inputs={"path": ledger, "values": [a.output], "add": 1, "delay": 0})
    b.output("x", c.output)
    return b.build()


def _kill(engine: fs.Engine, victim: str) -> None:
    if victim == "run_actors":
        before = set(fs.named("af-run-actor-"))
        for name in sorted(before):
            os.kill(fs.pid(fs.run_actor(name)), signal.SIGKILL)
        fs.wait_for(
            lambda: len(set(fs.named("af-run-actor-")) - before) == len(before),
            60,
            "replacement run actors",
        )
    elif victim == "controller":
        from actorflow.actors.controller import CONTROLLER_NAME

        controller = ray.get_actor(CONTROLLER_NAME, namespace=fs.NS)
        old = fs.pid(controller)
        os.kill(old, signal.SIGKILL)
        # Ray restarts the detached controller (max_restarts=-1) in a new process; a
        # client's start() makes it recover the runs.
        fs.wait_for(lambda: _pid_or_none(controller) not in (None, old), 60, "a new controller")
        with contextlib.suppress(Exception):
            engine.client.close()
        engine.client = fs.new_client(engine.settings)  # its controller recovers the runs
    else:
        engine.kill_nats()
        engine.start_nats()


def _pid_or_none(actor: object) -> int | None:
    try:
        return fs.pid(actor)
    except Exception:
        return None


async def _queue_live(js: JetStreamContext) -> list[str]:
    folded = await queue.read(js, ev.queue_subject(ev.queue_name("fconc", KEY)))
    return [line.entry for line in folded.live()]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("victim", ["run_actors", "controller", "nats"])
def test_a_queue_keeps_its_order_and_limit_when_a_process_dies(
    engine: fs.Engine, tmp_path: Path, victim: str
) -> None:
    engine.client.apply(_workflow())
    ledger = tmp_path / "ledger"
    runs = [
        engine.client.run("fconc", {"ledger": str(ledger), "cluster": KEY, "x": i}, version="1")
        for i in range(RUNS)
    ]
    ids = [r.run_id for r in runs]
    # The second run is under way: the first has finished, six wait their turn.
    fs.wait_for(lambda: len({n.key.split(".")[0] for n in fs.ledger(ledger)}) >= 2, 60, "two runs")
    waiting = sum(
        r.status == ev.RunStatus.PENDING for k, r in fs.records(engine.url).items() if k in ids
    )
    _kill(engine, victim)
    done = fs.wait_finished(engine.url, set(ids), 150)
    history = fs.history(engine.url)

    notes = fs.ledger(ledger)
    spans: dict[str, list[int]] = {}
    for i, note in enumerate(notes):
        spans.setdefault(note.key.split(".")[0], []).append(i)
    order = sorted(spans, key=lambda run: spans[run][0])
    overlaps = sum(spans[before][-1] > spans[after][0] for before, after in pairwise(order))
    admitted = Counter(
        run for run in ids for rec in history.get(run, []) if isinstance(rec.event, ev.RunAdmitted)
    )
    finishes = Counter(
        run
        for run in ids
        for rec in history.get(run, [])
        if isinstance(rec.event, ev.RunStopped) and rec.event.status.finished
    )
    completions = Counter(
        (run, rec.event.task.node)
        for run in ids
        for rec in history.get(run, [])
        if isinstance(rec.event, ev.TaskCompleted)
    )
    live = fs._on_nats(engine.url, _queue_live)
    stored: dict[str, float] = {}  # completed idempotency key -> when its result was stored
    for run in ids:
        for rec in history.get(run, []):
            if isinstance(rec.event, ev.TaskCompleted):
                stored.setdefault(rec.event.task.idempotency_key(run), rec.stored_at)
    started = Counter(n.key for n in notes if n.what == "start")
    figures = {
        "test": "concurrency_queue_fault",
        "victim": victim,
        "runs": RUNS,
        "waiting_at_kill": waiting,
        "finished": len(done),
        "overlaps": overlaps,
        "steps_run_twice": sum(c - 1 for c in started.values()),
        "completed_step_reruns": sum(
            n.what == "start" and n.key in stored and n.at > stored[n.key] for n in notes
        ),
        "missing_side_effects": sum(started[k] == 0 for k in stored),
        "left_in_queue": len(live),
    }
    fs.report(figures)
    assert waiting >= 1  # the fault did hit runs that were waiting their turn
    assert len(done) == RUNS, fs.records(engine.url)
    assert all(done[r].status is ev.RunStatus.SUCCEEDED for r in ids)
    assert [done[r].outputs for r in ids] == [{"x": i + 2} for i in range(RUNS)]
    assert overlaps == 0
    assert order == ids  # start order
    assert all(admitted[r] == 1 for r in ids), admitted
    assert all(finishes[r] == 1 for r in ids), finishes
    assert all(c == 1 for c in completions.values()), completions
    assert len(completions) == 2 * RUNS
    assert live == []
    # The ledger, not the engine's records: every completed step ran, none ran again after
    # its result was stored; with only run actors killed, no step ran twice at all (a
    # controller's death takes its replicas with it, nats-server's their deliveries).
    assert figures["missing_side_effects"] == 0
    assert figures["completed_step_reruns"] == 0
    if victim == "run_actors":
        assert figures["steps_run_twice"] == 0
