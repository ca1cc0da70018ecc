"""The trigger host really killed mid-stream: every event still starts exactly one run.

Events keep arriving while the host is killed twice — once with `ray.kill`, once with
SIGKILL of its process — and its held events are redelivered to the replacement the
controller creates. Every run id is derived from its event id, so the audit is exact:
one run per event, each SUCCEEDED, none extra; and no run has two `RunStarted`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest
import ray

import actorflow
from actorflow._client import _call
from actorflow.actors.run.history import replay
from actorflow.definitions import events as ev
from actorflow.triggers.evaluate import run_id_for
from actorflow.triggers.host import HOST_NAME

pytestmark = pytest.mark.integration

EVENTS = 60


def _host_info(client: actorflow.Client) -> dict[str, Any]:
    info: dict[str, Any] = client._call(
        _call(client._async._controller.plugin_call.remote("host.info", {}))
    )
    return info


def _wait_new_host(client: actorflow.Client, old_pid: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = _host_info(client)
        if info.get("alive") and info["pid"] != old_pid and "faulty" in info["triggers"]:
            return int(info["pid"])
        time.sleep(0.2)
    raise AssertionError("the controller never replaced the trigger host")


def test_killed_trigger_host_starts_each_event_exactly_once(
    client: actorflow.Client, settings: actorflow.Settings
) -> None:
    b = actorflow.WorkflowBuilder("t-faulty", version="1")
    seconds = b.input("seconds", type="number")
    n = b.input("n", type="integer")
    b.node("s", "sleep@1", inputs={"seconds": seconds})
    b.output("n", n)
    client.apply(b.build())
    client.apply(
        actorflow.Trigger.model_validate(
            {
                "metadata": {"name": "faulty"},
                "spec": {
                    "source": {"subject": "faulty.in"},
                    "workflow": "t-faulty",
                    "inputs": {"seconds": 0.3, "n": "${{ event.n }}"},
                    "maxConcurrency": 8,
                },
            }
        )
    )
    pid = _wait_new_host(client, -1)
    ids = [f"fault-{i}" for i in range(EVENTS)]
    for i in range(EVENTS // 3):
        client.publish("faulty.in", {"n": i}, msg_id=ids[i])
    time.sleep(0.5)  # some runs started and held
    ray.kill(ray.get_actor(HOST_NAME, namespace=settings.namespace), no_restart=True)
    for i in range(EVENTS // 3, 2 * EVENTS // 3):
        client.publish("faulty.in", {"n": i}, msg_id=ids[i])
    pid = _wait_new_host(client, pid)
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    for i in range(2 * EVENTS // 3, EVENTS):
        client.publish("faulty.in", {"n": i}, msg_id=ids[i])
    _wait_new_host(client, pid)

    expected = {run_id_for("faulty", e): i for i, e in enumerate(ids)}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = {r.run_id: r for r in client.runs(workflow="t-faulty")}
        if set(expected) <= set(runs) and all(
            runs[r].status is actorflow.RunStatus.SUCCEEDED for r in expected
        ):
            break
        time.sleep(0.5)
    runs = {r.run_id: r for r in client.runs(workflow="t-faulty")}
    assert set(runs) == set(expected), "a run is missing or an extra run was started"
    for run_id, n in expected.items():
        assert runs[run_id].status is actorflow.RunStatus.SUCCEEDED
        assert runs[run_id].outputs == {"n": n}
    starts = {
        run_id: sum(
            isinstance(rec.event, ev.RunStarted)
            for rec in client._call(replay(client._async.js, run_id))
        )
        for run_id in expected
    }
    assert set(starts.values()) == {1}
    stats = client.trigger("faulty").stats
    print(
        json.dumps(
            {
                "events": EVENTS,
                "runs": len(runs),
                "host_kills": 2,
                "seen": stats.seen,
                "started": stats.started,
            }
        )
    )
