"""Runtime environments and placement checks as pure functions over described nodes."""

from __future__ import annotations

import pytest

from actorflow.definitions.errors import DefinitionError, PlacementError
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Function, ResourceLevel, RuntimeEnv
from actorflow.runtime_envs.library import (
    NodeCapacity,
    check_function_fits,
    check_level_fits,
    placement_group_name,
    ray_bundles,
    ray_runtime_env,
)

GiB = 2**30
NODES = [
    NodeCapacity("head", {"CPU": 8, "memory": 4 * GiB}),
    NodeCapacity("gpu", {"CPU": 2, "GPU": 2, "memory": 4 * GiB}, {"accel": "gpu"}),
    NodeCapacity("big", {"CPU": 2, "memory": 16 * GiB}, {"zone": "east"}),
]


def fn(**spec: object) -> Function:
    return Function.model_validate({"metadata": {"name": "f"}, "spec": {"handler": "m:f", **spec}})


def level(**kw: object) -> ResourceLevel:
    return ResourceLevel.model_validate({"name": "small", **kw})


def test_yaml_runtime_env_and_function_that_names_it(tmp_path: object) -> None:
    docs = load_text(
        """
apiVersion: actorflow/v1
kind: RuntimeEnv
metadata: {name: numpy, version: "2"}
spec:
  pip: ["numpy==2.1"]
  envVars: {OMP_NUM_THREADS: "1"}
  level:
    name: medium
    strategy: SPREAD
    bundles: [{cpus: 1, memory: 1Gi, count: 3}]
---
apiVersion: actorflow/v1
kind: Function
metadata: {name: crunch}
spec:
  handler: m:f
  runtimeEnv: numpy@2
  replicas: {min: 0, max: 4, target: 2, downDelay: 1m}
""",
        file="defs.yaml",
    )
    env, function = docs
    assert isinstance(env, RuntimeEnv)
    assert isinstance(function, Function)
    assert ray_runtime_env(env) == {"pip": ["numpy==2.1"], "env_vars": {"OMP_NUM_THREADS": "1"}}
    assert env.spec.level is not None
    assert ray_bundles(env.spec.level) == [{"CPU": 1.0, "memory": float(GiB)}] * 3
    r = function.spec.replicas
    assert (r.min, r.max, r.target, r.down_delay) == (0, 4, 2, 60.0)


def test_replicas_bounds_are_checked_with_file_and_field() -> None:
    with pytest.raises(DefinitionError) as err:
        load_text(
            "apiVersion: actorflow/v1\nkind: Function\nmetadata: {name: f}\n"
            "spec:\n  handler: m:f\n  replicas: {min: 5, max: 2}\n",
            file="f.yaml",
        )
    issue = err.value.issues[0]
    assert (issue.file, issue.line) == ("f.yaml", 6)
    assert "min (5) must not exceed max (2)" in issue.message


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="STRICT_PACK"):
        level(strategy="TIGHT", bundles=[{"cpus": 1}])


def test_an_environment_without_settings_leaves_the_job_environment() -> None:
    assert ray_runtime_env(None) is None
    assert ray_runtime_env(RuntimeEnv.model_validate({"metadata": {"name": "e"}})) is None


def test_function_fits_where_resources_and_labels_allow() -> None:
    check_function_fits(fn(resources={"gpus": 1}), NODES)
    check_function_fits(fn(resources={"memory": "12Gi"}), NODES)
    check_function_fits(fn(nodeLabels={"zone": "east"}), NODES)
    with pytest.raises(PlacementError, match="GPU=4"):
        check_function_fits(fn(resources={"gpus": 4}), NODES)
    with pytest.raises(PlacementError, match="labels"):
        check_function_fits(fn(nodeLabels={"zone": "west"}), NODES)
    with pytest.raises(PlacementError, match="with labels"):  # labelled node is too small
        check_function_fits(fn(resources={"gpus": 1}, nodeLabels={"zone": "east"}), NODES)


def test_function_must_fit_a_bundle_of_its_level() -> None:
    small = level(bundles=[{"cpus": 1, "memory": "1Gi", "count": 2}])
    check_function_fits(fn(resources={"cpus": 0.5, "memory": "512Mi"}), NODES, small)
    with pytest.raises(PlacementError, match="no bundle of resource level 'small'"):
        check_function_fits(fn(resources={"cpus": 2}), NODES, small)
    with pytest.raises(PlacementError, match="put the labels on the level"):
        check_function_fits(fn(resources={"cpus": 1}, nodeLabels={"a": "b"}), NODES, small)


@pytest.mark.parametrize(
    ("strategy", "bundles", "message"),
    [
        ("PACK", [{"cpus": 3, "count": 5}], "need CPU=15"),
        ("STRICT_PACK", [{"cpus": 2, "count": 5}], "STRICT_PACK needs one node"),
        ("STRICT_SPREAD", [{"cpus": 1, "count": 4}], "STRICT_SPREAD needs 4 distinct nodes"),
        ("SPREAD", [{"gpus": 3}], "no node can hold a bundle of CPU=1, GPU=3"),
    ],
)
def test_levels_that_could_never_be_placed(
    strategy: str, bundles: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(PlacementError, match=message):
        check_level_fits(level(strategy=strategy, bundles=bundles), NODES)


def test_levels_that_fit() -> None:
    check_level_fits(level(strategy="STRICT_PACK", bundles=[{"cpus": 2, "count": 4}]), NODES)
    check_level_fits(level(strategy="STRICT_SPREAD", bundles=[{"cpus": 1, "count": 3}]), NODES)
    check_level_fits(level(bundles=[{"gpus": 1, "count": 2}], nodeLabels={"accel": "gpu"}), NODES)
    with pytest.raises(PlacementError, match="labels"):
        check_level_fits(level(bundles=[{"cpus": 1}], nodeLabels={"accel": "tpu"}), NODES)


def test_placement_group_name_follows_the_shape() -> None:
    a = level(bundles=[{"cpus": 1}])
    assert placement_group_name(a) == placement_group_name(level(bundles=[{"cpus": 1}]))
    assert placement_group_name(a) != placement_group_name(level(bundles=[{"cpus": 2}]))
    assert placement_group_name(a).startswith("af-level-small-")
