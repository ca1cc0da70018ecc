"""Which priority a replica takes its next task from: a pure policy, driven by the intake.

A pool's tasks wait in one queue per priority (0-9). A replica with a free slot takes from
the highest priority that has tasks waiting — unless a lower one has been passed over
`STARVATION_LIMIT` times in a row while it waited: then it takes from the priority passed
over most (the higher one on a tie). Within a priority, tasks start in the order they were
queued (the queue is FIFO).

The bound: a priority with tasks waiting is passed over at most
``STARVATION_LIMIT + m - 1`` consecutive times by one replica, m being the number of other
priorities that had tasks waiting meanwhile (at most 9) — once it has been passed over
`STARVATION_LIMIT` times, only priorities passed over at least as often can go before it,
and each of those is served once and starts counting again from zero. With two priorities
waiting, a low task starts after at most `STARVATION_LIMIT` higher ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

STARVATION_LIMIT: Final = 8
#: Consecutive tasks a replica takes from other priorities while one waits, before it takes
#: one of the waiting one (the starvation bound: small enough that a low-priority task is
#: not stuck behind a steady stream of urgent ones, large enough that urgent ones go first).


@dataclass(frozen=True)
class BandPicker:
    """The policy's state: per priority, how many takes in a row passed it over while it
    had tasks waiting."""

    limit: int = STARVATION_LIMIT
    passed: Mapping[int, int] = field(default_factory=dict)

    def choose(self, pending: Mapping[int, int]) -> int | None:
        """The priority to take the next task from, given the tasks waiting per priority;
        None when nothing waits."""
        waiting = [p for p, n in pending.items() if n > 0]
        if not waiting:
            return None
        starving = [p for p in waiting if self.passed.get(p, 0) >= self.limit]
        if starving:
            return max(starving, key=lambda p: (self.passed.get(p, 0), p))
        return max(waiting)

    def took(self, priority: int, pending: Mapping[int, int]) -> BandPicker:
        """The state after a task of `priority` was taken while `pending` waited (before
        the take): every other priority with tasks waiting was passed over once more; one
        with none waiting, or the one taken, starts again from zero."""
        passed = {
            p: self.passed.get(p, 0) + 1 for p, n in pending.items() if n > 0 and p != priority
        }
        return BandPicker(self.limit, passed)

    def plan(self, pending: Mapping[int, int], slots: int) -> tuple[list[int], BandPicker]:
        """The priorities of the next (up to) `slots` takes, in order, and the state after
        them; each take leaves one task fewer waiting."""
        left = {p: n for p, n in pending.items() if n > 0}
        picker: BandPicker = self
        takes: list[int] = []
        for _ in range(slots):
            priority = picker.choose(left)
            if priority is None:
                break
            picker = picker.took(priority, left)
            takes.append(priority)
            left[priority] -= 1
        return takes, picker


__all__ = ["STARVATION_LIMIT", "BandPicker"]
