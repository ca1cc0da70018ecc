"""Resource levels as Ray placement groups: reserved once, shared by the pools that use them.

A placement group is detached and named after its level's shape, so a restarted controller
finds the reservation it made before instead of reserving the capacity twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from ray.util.placement_group import (
    PlacementGroup,
    get_placement_group,
    placement_group,
    remove_placement_group,
)

from actorflow.definitions.errors import PlacementError
from actorflow.definitions.models import ResourceLevel
from actorflow.runtime_envs.library import (
    NodeCapacity,
    check_level_fits,
    placement_group_name,
    ray_bundles,
)

log = logging.getLogger(__name__)


def cluster_nodes() -> list[NodeCapacity]:
    """The alive nodes of the Ray cluster, as the pure placement checks take them."""
    return [
        NodeCapacity(n["NodeID"], dict(n["Resources"]), dict(n.get("Labels") or {}))
        for n in ray.nodes()  # type: ignore[no-untyped-call]
        if n.get("Alive")
    ]


class Levels:
    """Placement groups by name, with the pools that hold each (released with the last)."""

    def __init__(self, namespace: str, ready_timeout: float) -> None:
        self._namespace = namespace
        self._ready_timeout = ready_timeout
        self._groups: dict[str, PlacementGroup] = {}
        self._users: dict[str, set[str]] = {}
        self._lock = asyncio.Lock()

    async def acquire(self, level: ResourceLevel, user: str) -> PlacementGroup:
        """The level's placement group, reserved now if nobody has; fails with a
        `PlacementError` rather than waiting for capacity that does not come."""
        name = placement_group_name(level)
        async with self._lock:
            group = self._groups.get(name) or self._existing(name)
            if group is None:
                check_level_fits(level, cluster_nodes())
                group = placement_group(
                    ray_bundles(level),
                    strategy=level.strategy,
                    name=name,
                    lifetime="detached",
                    bundle_label_selector=(
                        [dict(level.node_labels)] * len(level.flat_bundles())
                        if level.node_labels
                        else None
                    ),
                )
            try:
                await asyncio.wait_for(
                    asyncio.wrap_future(group.ready().future()), self._ready_timeout
                )
            except TimeoutError:
                remove_placement_group(group)
                self._groups.pop(name, None)
                raise PlacementError(
                    f"resource level {level.name!r}: its bundles could not be reserved within "
                    f"{self._ready_timeout:g}s; the capacity exists but is taken"
                ) from None
            self._groups[name] = group
            self._users.setdefault(name, set()).add(user)
            return group

    def _existing(self, name: str) -> PlacementGroup | None:
        try:
            group: PlacementGroup = get_placement_group(name)
        except ValueError:
            return None
        return group

    async def release(self, level: ResourceLevel, user: str) -> None:
        """Give the reservation back once no pool uses it."""
        name = placement_group_name(level)
        async with self._lock:
            users = self._users.get(name, set())
            users.discard(user)
            if users or name not in self._groups:
                return
            self._users.pop(name, None)
            group = self._groups.pop(name)
            try:
                remove_placement_group(group)
            except Exception as exc:  # already gone
                log.debug("placement group %s not removed: %s", name, exc)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"placement_group": name, "functions": sorted(users)}
            for name, users in sorted(self._users.items())
        ]
