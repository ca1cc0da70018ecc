"""The function engine on a three-node Ray cluster: versions, placement, runtime
environments and levels, autoscaling to zero, draining.

The cluster (see conftest) has a head node, a node with two logical GPUs and a node with
16 GiB of memory labelled ``zone=east``; placement is checked against their node ids.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ray

import actorflow
from actorflow.definitions import events as ev

Cli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture

HANDLERS = "af_test_steps"
STEPS_DIR = Path(__file__).parent / "steps"


def fn(name: str, handler: str, version: str = "1", **spec: Any) -> actorflow.Function:
    return actorflow.Function.model_validate(
        {
            "metadata": {"name": name, "version": version},
            "spec": {
                "handler": f"{HANDLERS}:{handler}",
                "codeDir": str(STEPS_DIR),
                "resources": {"cpus": 0.1},
                # Off the GPU and big-memory nodes unless a test says otherwise.
                "nodeLabels": {} if "runtimeEnv" in spec else {"af-role": "head"},
                **spec,
            },
        }
    )


def env(name: str, version: str = "1", **spec: Any) -> actorflow.RuntimeEnv:
    return actorflow.RuntimeEnv.model_validate(
        {"metadata": {"name": name, "version": version}, "spec": spec}
    )


def one_node(name: str, ref: str, inputs: dict[str, Any] | None = None) -> actorflow.Workflow:
    b = actorflow.WorkflowBuilder(name)
    b.node("n", ref, inputs=inputs or {})
    b.output("n", "${{ nodes.n.output }}")
    return b.build()


def pool(client: actorflow.Client, ref: str) -> actorflow.PoolStatus:
    for p in client.pools():
        if p.ref == ref:
            return p
    raise AssertionError(f"no pool for {ref}")


def until(what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Poll `check` until it returns something truthy (bounded; fails with `what`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def history(client: actorflow.Client, run_id: str) -> list[Any]:
    async def read() -> list[Any]:
        from actorflow.actors.run.history import replay

        return [rec.event for rec in await replay(client._async.js, run_id)]

    return client._call(read())


pytestmark = pytest.mark.usefixtures("remove_applied")


# --- placement ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resources", "labels", "role"),
    [
        ({"cpus": 0.25, "gpus": 1}, {}, "gpu"),
        ({"cpus": 0.25, "memory": "6Gi"}, {}, "big"),
        ({"cpus": 0.25}, {"zone": "east"}, "big"),
    ],
    ids=["gpu", "memory", "label"],
)
def test_replicas_land_only_where_they_fit(
    client: actorflow.Client,
    node_ids: dict[str, str],
    resources: dict[str, Any],
    labels: dict[str, str],
    role: str,
) -> None:
    name = f"pin-{role}"
    f = fn(name, "where", resources=resources, nodeLabels=labels, replicas=2, maxConcurrency=4)
    wf = actorflow.WorkflowBuilder(f"{name}-wf")
    wf.input("items", type="array")
    wf.node("each", f"{name}@1", for_each="${{ inputs.items }}", inputs={"value": "${{ item }}"})
    wf.output("each", "${{ nodes.each.output }}")
    client.apply([f, wf.build()])
    assert pool(client, f.ref).nodes == [node_ids[role]]
    out = client.run(f"{name}-wf", {"items": list(range(8))}).result(timeout=120)
    ran_on = {o["node_id"] for o in out["each"]}
    assert ran_on == {node_ids[role]}
    if role == "gpu":  # Ray gave each replica one of the two logical GPUs
        assert all(len(o["gpus"]) == 1 for o in out["each"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"resources": {"gpus": 8}, "nodeLabels": {}}, "no node of the Ray cluster has .*GPU=8"),
        ({"resources": {"memory": "64Gi"}, "nodeLabels": {}}, "memory=64.00Gi"),
        ({"nodeLabels": {"zone": "mars"}}, "no node of the Ray cluster has the labels"),
    ],
)
def test_impossible_requests_are_refused_at_apply(
    client: actorflow.Client, spec: dict[str, Any], message: str
) -> None:
    f = fn("impossible", "noop", **spec)
    with pytest.raises(actorflow.PlacementError, match=message):
        client.apply(f)
    assert f.ref not in {g.ref for g in client.functions()}


def test_handler_that_does_not_import_is_refused_at_apply(client: actorflow.Client) -> None:
    f = fn("broken-import", "no_such_handler")
    with pytest.raises(actorflow.FunctionPoolError, match="does not import: AttributeError"):
        client.apply(f)
    assert f.ref not in {g.ref for g in client.functions()}


# --- versions ----------------------------------------------------------------------------
def test_versions_coexist_latest_is_fixed_at_start_and_pinned_ones_cannot_go(
    client: actorflow.Client,
) -> None:
    client.apply([fn("ver", "version_one", "1"), fn("ver", "version_two", "2")])
    pinned = one_node("ver-pinned", "ver@1")
    b = actorflow.WorkflowBuilder("ver-latest")
    b.sleep("pause", "2s")
    b.node("n", "ver", needs=["pause"])
    b.output("n", "${{ nodes.n.output }}")
    client.apply([pinned, b.build()])
    assert client.run("ver-pinned").result(timeout=60) == {"n": "v1"}
    # The run resolves `ver@latest` to 2 when it starts; 3 arrives while it sleeps.
    started = client.run("ver-latest")
    client.apply(fn("ver", "version_three", "3"))
    assert started.result(timeout=60) == {"n": "v2"}
    assert client.run("ver-latest").result(timeout=60) == {"n": "v3"}
    assert {p.version for p in client.pools() if p.function == "ver"} == {"1", "2", "3"}

    with pytest.raises(actorflow.InUseError, match="ver-pinned@1"):
        client.delete("Function", "ver@1")
    client.delete("Function", "ver@2")  # nothing pins it
    assert {f.metadata.version for f in client.functions() if f.metadata.name == "ver"} == {
        "1",
        "3",
    }
    assert {p.version for p in client.pools() if p.function == "ver"} == {"1", "3"}
    with pytest.raises(actorflow.NotFoundError):
        client.delete("Function", "ver@2")


# --- runtime environments and levels -------------------------------------------------------
def test_runtime_env_vars_and_a_shared_level(client: actorflow.Client) -> None:
    level = {
        "name": "tests-small",
        "strategy": "PACK",
        "bundles": [{"cpus": 1, "count": 2}],
        "nodeLabels": {"af-role": "head"},
    }
    e = env("tests-env", envVars={"AF_TEST_ENV": "from-env-1"}, level=level)
    a = fn("in-level-a", "where", runtimeEnv="tests-env@1", resources={"cpus": 0.5})
    b = fn("in-level-b", "where", runtimeEnv="tests-env@1", resources={"cpus": 0.5})
    client.apply([e, a, b, one_node("in-level-wf", "in-level-a@1")])
    assert client.run("in-level-wf").result(timeout=60)["n"]["env"] == "from-env-1"
    pools = [pool(client, a.ref), pool(client, b.ref)]
    assert {p.level for p in pools} == {"tests-small"}
    groups = ray.get(client._async._controller.levels.remote())
    assert [g["functions"] for g in groups if "tests-small" in g["placement_group"]] == [
        ["in-level-a@1", "in-level-b@1"]
    ]
    too_big = fn("in-level-c", "where", runtimeEnv="tests-env@1", resources={"cpus": 2})
    with pytest.raises(actorflow.PlacementError, match="no bundle of resource level"):
        client.apply(too_big)
    with pytest.raises(actorflow.InUseError, match="in-level-a@1"):
        client.delete("RuntimeEnv", "tests-env@1")
    with pytest.raises(actorflow.DefinitionError, match="not registered"):
        client.apply(fn("no-env", "where", runtimeEnv="nope@1"))


def test_moving_to_another_environment_loses_no_queued_task(client: actorflow.Client) -> None:
    e1 = env("mover-env", "1", envVars={"AF_TEST_ENV": "one"})
    e2 = env(
        "mover-env",
        "2",
        envVars={"AF_TEST_ENV": "two"},
        level={
            "name": "tests-medium",
            "bundles": [{"cpus": 1, "count": 2}],
            "nodeLabels": {"af-role": "head"},
        },
    )
    f1 = fn("mover", "where", runtimeEnv="mover-env@1", replicas=1, maxConcurrency=2)
    wf = actorflow.WorkflowBuilder("mover-wf")
    wf.input("items", type="array")
    wf.node("each", "mover@1", for_each="${{ inputs.items }}", inputs={"value": "${{ item }}"})
    wf.output("each", "${{ nodes.each.output }}")
    client.apply([e1, e2, f1, wf.build()])
    slow = actorflow.WorkflowBuilder("mover-slow")
    slow.node("s", "sleep@1", inputs={"seconds": 0})
    run = client.run("mover-wf", {"items": list(range(40))})
    f2 = fn("mover", "where", runtimeEnv="mover-env@2", replicas=1, maxConcurrency=2)
    client.apply(f2)  # same version, new environment: replicas replaced under the queue
    out = run.result(timeout=120)["each"]
    assert sorted(o["value"] for o in out) == list(range(40))
    assert pool(client, "mover@1").level == "tests-medium"
    assert client.run("mover-wf", {"items": [1]}).result(timeout=60)["each"][0]["env"] == "two"
    starts = Counter(
        e.task.key for e in history(client, run.run_id) if isinstance(e, ev.TaskCompleted)
    )
    assert set(starts.values()) == {1}


def test_a_pip_package_that_cannot_install_interrupts_runs_with_the_error(
    client: actorflow.Client,
) -> None:
    e = env("bad-pip", pip=["actorflow-no-such-package-for-tests==0.0.1"])
    f = fn("needs-bad-pip", "noop", runtimeEnv="bad-pip@1")
    [_, applied] = client.apply([e, f])
    assert "runtime environment failed to set up" in (applied.error or "")
    assert "runtime environment" in (pool(client, f.ref).error or "")
    client.apply(one_node("bad-pip-wf", f.ref))
    record = client.run("bad-pip-wf").wait(timeout=120)
    assert record.status is actorflow.RunStatus.INTERRUPTED
    assert record.error is not None
    assert record.error.code == "RUNTIME_ENV_FAILED"
    assert "actorflow-no-such-package-for-tests" in record.error.message


# --- autoscaling and draining ---------------------------------------------------------------
def test_pool_scales_from_zero_under_load_and_back(client: actorflow.Client) -> None:
    replicas = {"min": 0, "max": 3, "target": 1, "downDelay": "1s"}
    f = fn("elastic", "sleep", replicas=replicas)
    wf = actorflow.WorkflowBuilder("elastic-wf")
    wf.input("items", type="array")
    wf.node("each", "elastic@1", for_each="${{ inputs.items }}", inputs={"seconds": "${{ item }}"})
    wf.output("each", "${{ nodes.each.output }}")
    client.apply([f, wf.build()])
    until("the probe replica to go", lambda: pool(client, f.ref).replicas == 0)
    run = client.run("elastic-wf", {"items": [1.0] * 9})  # waits durably for a cold start
    peak = until("a scale-up past one replica", lambda: pool(client, f.ref).replicas >= 2)
    assert peak
    assert run.result(timeout=120) == {"each": [1.0] * 9}
    until("the pool to drain back to zero", lambda: pool(client, f.ref).replicas == 0)
    p = pool(client, f.ref)
    assert (p.desired, p.min, p.max, p.pending, p.in_flight) == (0, 0, 3, 0, 0)


def test_replacing_replicas_lets_in_flight_tasks_finish_once(client: actorflow.Client) -> None:
    f = fn("drained", "sleep", replicas=2, maxConcurrency=2)
    wf = actorflow.WorkflowBuilder("drained-wf")
    wf.input("items", type="array")
    wf.node("each", "drained@1", for_each="${{ inputs.items }}", inputs={"seconds": "${{ item }}"})
    wf.output("each", "${{ nodes.each.output }}")
    client.apply([f, wf.build()])
    run = client.run("drained-wf", {"items": [1.5] * 8})
    until("tasks in flight", lambda: pool(client, f.ref).in_flight >= 2)
    changed = fn("drained", "sleep", replicas=2, maxConcurrency=2, timeout="5m")
    client.apply(changed)  # a new definition of the same version: replicas replaced
    assert run.result(timeout=120) == {"each": [1.5] * 8}
    events = history(client, run.run_id)
    completed = Counter(e.task.key for e in events if isinstance(e, ev.TaskCompleted))
    started = Counter(e.task.key for e in events if isinstance(e, ev.TaskStarted))
    assert len(completed) == 8
    assert set(completed.values()) == {1}
    assert set(started.values()) == {1}  # drained, not killed: nothing ran twice


def test_functions_cli_lists_and_refuses_bad_deletes(client: actorflow.Client, cli: Cli) -> None:
    client.apply([fn("cli-del", "noop", replicas=2), one_node("cli-del-wf", "cli-del@1")])

    listing = cli("functions", "list")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "cli-del" in line)
    assert "2/2" in row
    assert "2-2" in row
    assert "serving" in row
    refused = cli("functions", "delete", "cli-del@1")
    assert refused.returncode == 1
    assert "is used by workflow cli-del-wf@1" in refused.stderr
    bad = cli("functions", "delete", "cli-del")
    assert bad.returncode == 2
    assert "NAME@VERSION" in bad.stderr
    assert "cli-del@1" in {f.ref for f in client.functions()}


def test_input_and_output_schemas_fail_the_node_naming_the_field(client: actorflow.Client) -> None:
    f = fn(
        "checked",
        "echo",
        inputSchema={
            "type": "object",
            "properties": {"value": {"type": "integer", "minimum": 0}},
            "required": ["value"],
        },
        outputSchema={"type": "integer", "maximum": 10},
        retry={"maxAttempts": 3, "initialDelay": 0.1},
    )
    wf = actorflow.WorkflowBuilder("checked-wf")
    wf.input("value")
    wf.node("n", "checked@1", inputs={"value": "${{ inputs.value }}"})
    wf.output("n", "${{ nodes.n.output }}")
    client.apply([f, wf.build()])
    assert client.run("checked-wf", {"value": 3}).result(timeout=60) == {"n": 3}
    for value, code, field in [(-1, "INPUT_INVALID", "value"), (11, "OUTPUT_INVALID", "")]:
        run = client.run("checked-wf", {"value": value})
        record = run.wait(timeout=60)
        assert record.status is actorflow.RunStatus.INTERRUPTED, record
        assert record.error is not None
        assert record.error.code == code
        assert record.error.details.get("field", "") == field
        assert ("less than the minimum" if value < 0 else "greater than the maximum") in (
            record.error.message
        )
        (node,) = run.nodes()
        assert node.attempt == 1  # the same value would not fit again: not retried
