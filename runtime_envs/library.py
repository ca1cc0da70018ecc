"""What a `RuntimeEnv` means to Ray, and whether the cluster can ever satisfy a request.

Pure functions over plain data: the checks take the cluster's nodes as values, so they run
(and are tested) without Ray, and `apply` can refuse an impossible request with a message
instead of leaving replicas or placement groups pending for ever.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actorflow.definitions.errors import PlacementError
from actorflow.definitions.models import Function, ResourceLevel, Resources, RuntimeEnv


@dataclass(frozen=True)
class NodeCapacity:
    """One Ray node as the checks see it: its total resources and its labels."""

    node_id: str
    resources: Mapping[str, float]
    labels: Mapping[str, str] = field(default_factory=dict)

    def has_labels(self, wanted: Mapping[str, str]) -> bool:
        return all(self.labels.get(k) == v for k, v in wanted.items())

    def holds(self, demand: Mapping[str, float]) -> bool:
        return all(self.resources.get(k, 0.0) >= v for k, v in demand.items())


def demand(resources: Resources) -> dict[str, float]:
    """Ray resource names → amounts, zeros left out (Ray treats absent as zero)."""
    wanted = {
        "CPU": resources.cpus,
        "GPU": resources.gpus,
        "memory": float(resources.memory or 0),
        **resources.custom,
    }
    return {k: v for k, v in wanted.items() if v}


def ray_runtime_env(env: RuntimeEnv | None) -> dict[str, Any] | None:
    """The `runtime_env` Ray builds a replica's process with (None: the job's own)."""
    if env is None:
        return None
    spec = env.spec
    out: dict[str, Any] = {}
    if spec.pip:
        out["pip"] = list(spec.pip)
    if spec.env_vars:
        out["env_vars"] = dict(spec.env_vars)
    if spec.working_dir:
        out["working_dir"] = spec.working_dir
    if spec.py_modules:
        out["py_modules"] = list(spec.py_modules)
    return out or None


def placement_group_name(level: ResourceLevel) -> str:
    """Named after the level *and* its shape: a level redefined with other bundles is a
    different reservation, and the old one stays until nothing uses it."""
    shape = json.dumps(level.model_dump(mode="json"), sort_keys=True).encode()
    return f"af-level-{level.name}-{hashlib.sha256(shape).hexdigest()[:10]}"


def ray_bundles(level: ResourceLevel) -> list[dict[str, float]]:
    return [demand(bundle) or {"CPU": 0.001} for bundle in level.flat_bundles()]


def _show(wanted: Mapping[str, float]) -> str:
    def fmt(key: str, value: float) -> str:
        if key == "memory":
            return f"memory={value / 2**30:.2f}Gi"
        return f"{key}={value:g}"

    return ", ".join(fmt(k, v) for k, v in wanted.items()) or "nothing"


def _labelled(
    nodes: Sequence[NodeCapacity], labels: Mapping[str, str], what: str
) -> list[NodeCapacity]:
    matching = [n for n in nodes if n.has_labels(labels)]
    if labels and not matching:
        raise PlacementError(f"{what}: no node of the Ray cluster has the labels {dict(labels)}")
    return matching


def check_level_fits(level: ResourceLevel, nodes: Sequence[NodeCapacity]) -> None:
    """Refuse a level whose placement group could never be placed on these nodes."""
    what = f"resource level {level.name!r}"
    candidates = _labelled(nodes, level.node_labels, what)
    bundles = [demand(b) for b in level.flat_bundles()]
    for wanted in bundles:
        if not any(n.holds(wanted) for n in candidates):
            raise PlacementError(f"{what}: no node can hold a bundle of {_show(wanted)}")
    if level.strategy == "STRICT_PACK":
        total: dict[str, float] = {}
        for wanted in bundles:
            for k, v in wanted.items():
                total[k] = total.get(k, 0.0) + v
        if not any(n.holds(total) for n in candidates):
            raise PlacementError(
                f"{what}: STRICT_PACK needs one node with {_show(total)}; none has it"
            )
    elif level.strategy == "STRICT_SPREAD":
        free = list(candidates)
        for wanted in sorted(bundles, key=lambda d: sorted(d.values()), reverse=True):
            host = next((n for n in free if n.holds(wanted)), None)
            if host is None:
                raise PlacementError(
                    f"{what}: STRICT_SPREAD needs {len(bundles)} distinct nodes that fit its "
                    f"bundles; the cluster has {len(candidates)} that qualify"
                )
            free.remove(host)
    else:
        for key in {k for wanted in bundles for k in wanted}:
            need = sum(wanted.get(key, 0.0) for wanted in bundles)
            have = sum(n.resources.get(key, 0.0) for n in candidates)
            if need > have:
                raise PlacementError(
                    f"{what}: its bundles need {_show({key: need})} in all; "
                    f"the cluster has {_show({key: have})}"
                )


def check_function_fits(
    function: Function, nodes: Sequence[NodeCapacity], level: ResourceLevel | None = None
) -> None:
    """Refuse a function whose replica no node (or, inside a level, no bundle) can hold."""
    what = f"function {function.ref}"
    wanted = demand(function.spec.resources)
    if level is None:
        candidates = _labelled(nodes, function.spec.node_labels, what)
        if not any(n.holds(wanted) for n in candidates):
            where = f" with labels {function.spec.node_labels}" if function.spec.node_labels else ""
            raise PlacementError(
                f"{what}: no node of the Ray cluster{where} has {_show(wanted)} "
                "(check cpus / gpus / memory / custom resources)"
            )
        return
    if function.spec.node_labels:
        raise PlacementError(
            f"{what}: nodeLabels cannot be combined with resource level {level.name!r}; "
            "put the labels on the level"
        )
    bundles = [demand(b) for b in level.flat_bundles()]
    if not any(all(b.get(k, 0.0) >= v for k, v in wanted.items()) for b in bundles):
        raise PlacementError(
            f"{what}: a replica needs {_show(wanted)} but no bundle of resource level "
            f"{level.name!r} is that large ({'; '.join(_show(b) for b in bundles)})"
        )
