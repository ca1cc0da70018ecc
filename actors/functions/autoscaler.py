"""How many replicas a function pool should have: a pure policy, driven by the controller.

The signal is the pool's durable consumer: tasks waiting in the queue (pending) plus tasks
delivered and not yet acknowledged (in flight). The policy aims at `target` of them per
replica, within `min`..`max`, and damps changes with the up / down delays so a burst that
has already gone does not start replicas, and a short lull does not kill warm ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from actorflow.definitions.models import Replicas


def needed(pending: int, in_flight: int, target: int, bounds: Replicas) -> int:
    """Replicas the current work asks for, within the pool's bounds."""
    work = max(pending, 0) + max(in_flight, 0)
    return min(max(math.ceil(work / max(target, 1)), bounds.min), bounds.max)


@dataclass(frozen=True)
class Scaler:
    """The pool's desired size and how long the work has asked for another one."""

    desired: int
    asking: int | None = None  # the size the work has asked for since `since`
    since: float = 0.0

    def step(self, need: int, now: float, bounds: Replicas) -> Scaler:
        """The next state after observing `need` at monotonic time `now`."""
        need = min(max(need, bounds.min), bounds.max)
        if need == self.desired:
            return replace(self, asking=None)
        if self.desired == 0:
            # Work is waiting on an empty pool: a cold start is never worth delaying.
            return Scaler(desired=need)
        growing = need > self.desired
        if self.asking is None or (self.asking > self.desired) != growing:
            state = replace(self, asking=need, since=now)
        else:  # same direction: remember the latest ask (a larger burst, a deeper lull)
            state = replace(self, asking=need)
        delay = bounds.up_delay if growing else bounds.down_delay
        return Scaler(desired=need) if now - state.since >= delay else state


__all__ = ["Scaler", "needed"]
