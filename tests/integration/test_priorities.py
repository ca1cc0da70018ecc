"""Task priorities on the real engine: a saturated pool (one replica, one slot) starts the
most urgent waiting task first, and a steady stream of urgent tasks keeps a low one
waiting no longer than the starvation bound.

The first task of each test holds the pool's only slot until the test creates a file, so
the backlog is formed — and queued, since a start returns once its first task is — before
anything else can start; each step appends its label to a ledger when it starts.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nats
import pytest

import actorflow
from actorflow.actors.functions.bands import STARVATION_LIMIT
from actorflow.actors.store.errors import NOT_FOUND
from actorflow.definitions import events as ev
from actorflow.definitions.priorities import PRIORITIES

STEPS_DIR = Path(__file__).parent / "steps"

GATED = actorflow.Function.model_validate(
    {
        "metadata": {"name": "prio-gate", "version": "1"},
        "spec": {
            "handler": "af_test_steps:ordered",
            "codeDir": str(STEPS_DIR),
            "resources": {"cpus": 0.1},
            "nodeLabels": {"af-role": "head"},
            "replicas": 1,
            "maxConcurrency": 1,
        },
    }
)

pytestmark = pytest.mark.usefixtures("remove_applied")


def _workflow(name: str, node_priority: int | None = None) -> actorflow.Workflow:
    node: dict[str, Any] = {
        "id": "step",
        "function": "prio-gate@1",
        "inputs": {
            "ledger": "${{ inputs.ledger }}",
            "label": "${{ inputs.label }}",
            "gate": "${{ inputs.gate }}",
        },
    }
    if node_priority is not None:
        node["priority"] = node_priority
    return actorflow.Workflow.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "inputs": {
                    "ledger": {"type": "string"},
                    "label": {"type": "string"},
                    "gate": {"type": "string", "default": ""},
                },
                "nodes": [node],
            },
        }
    )


@pytest.fixture(scope="module")
def pool(client: actorflow.Client) -> None:
    client.apply([GATED, _workflow("prio-one"), _workflow("prio-urgent-node", node_priority=9)])


def _lines(ledger: Path) -> list[str]:
    return ledger.read_text().split() if ledger.exists() else []


def _until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _hold_the_slot(client: actorflow.Client, tmp: Path, priority: int) -> actorflow.Run:
    """Start a run whose step holds the pool's one slot until `tmp/gate` exists."""
    ledger = tmp / "ledger"
    blocker = client.run(
        "prio-one",
        {"ledger": str(ledger), "label": "blocker", "gate": str(tmp / "gate")},
        priority=priority,
    )
    _until(lambda: _lines(ledger) == ["blocker"], "the blocking step to start")
    return blocker


def test_a_high_priority_run_starts_before_earlier_low_priority_ones(
    client: actorflow.Client, pool: None, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger")
    blocker = _hold_the_slot(client, tmp_path, priority=5)
    runs = [
        client.run("prio-one", {"ledger": ledger, "label": f"low-{i}"}, priority=1)
        for i in range(3)
    ]
    runs.append(client.run("prio-one", {"ledger": ledger, "label": "high"}, priority=8))
    # Run priority 0, but its node says 9: the node's wins.
    runs.append(client.run("prio-urgent-node", {"ledger": ledger, "label": "node-9"}, priority=0))
    runs.append(client.run("prio-one", {"ledger": ledger, "label": "default"}))
    (tmp_path / "gate").touch()
    for run in [blocker, *runs]:
        assert run.wait(timeout=120).status is actorflow.RunStatus.SUCCEEDED
    assert _lines(tmp_path / "ledger") == [
        "blocker",
        "node-9",
        "high",
        "default",
        "low-0",
        "low-1",
        "low-2",
    ]
    records = {r.run_id: r for r in client.runs(workflow="prio-one")}
    assert records[blocker.run_id].priority == 5
    assert [records[r.run_id].priority for r in runs[:4]] == [1, 1, 1, 8]
    assert records[runs[-1].run_id].priority == 5  # the workflow's default
    urgent = client.runs(workflow="prio-urgent-node")
    assert [r.priority for r in urgent if r.run_id == runs[4].run_id] == [0]


def test_a_stream_of_urgent_tasks_keeps_a_low_one_waiting_no_longer_than_the_bound(
    client: actorflow.Client, pool: None, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger")
    blocker = _hold_the_slot(client, tmp_path, priority=9)
    low = client.run("prio-one", {"ledger": ledger, "label": "low"}, priority=0)
    urgent = [
        client.run("prio-one", {"ledger": ledger, "label": f"urgent-{i}"}, priority=9)
        for i in range(STARVATION_LIMIT + 4)
    ]
    (tmp_path / "gate").touch()
    for run in [blocker, low, *urgent]:
        assert run.wait(timeout=120).status is actorflow.RunStatus.SUCCEEDED
    started = _lines(tmp_path / "ledger")[1:]
    # Urgent ones first (in the order they were queued) — but the low one is taken once it
    # has been passed over STARVATION_LIMIT times, not after all of them.
    assert started.index("low") == STARVATION_LIMIT, started
    assert [s for s in started if s != "low"] == [f"urgent-{i}" for i in range(len(urgent))]


def test_a_bad_run_priority_is_refused_before_anything_starts(
    client: actorflow.Client, pool: None
) -> None:
    before = len(client.runs(workflow="prio-one"))
    with pytest.raises(actorflow.InputError, match="priority"):
        client.run("prio-one", {"ledger": "/dev/null", "label": "x"}, priority=10)
    assert len(client.runs(workflow="prio-one")) == before


async def _consumers(url: str, function: str, version: str) -> dict[int, str]:
    """Each priority's consumer of a pool that exists: priority -> its filter subject."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        out: dict[int, str] = {}
        for p in PRIORITIES:
            try:
                info = await js.consumer_info(
                    ev.STREAM_TASKS, ev.pool_consumer(function, version, p)
                )
            except NOT_FOUND:
                continue
            out[p] = info.config.filter_subject or ""
        return out
    finally:
        await nc.close()


def test_a_pool_has_a_consumer_per_priority_from_apply_to_delete(
    client: actorflow.Client,
) -> None:
    fn = GATED.model_copy(
        update={"metadata": GATED.metadata.model_copy(update={"name": "prio-gone"})}
    )
    client.apply(fn)
    made = asyncio.run(_consumers(client.nats_url, "prio-gone", "1"))
    assert made == {p: ev.task_subject("prio-gone", "1", p) for p in PRIORITIES}
    assert made[5] == "af.task.prio-gone.1"  # the subject a pool always had
    client.delete("Function", "prio-gone@1")
    assert asyncio.run(_consumers(client.nats_url, "prio-gone", "1")) == {}
