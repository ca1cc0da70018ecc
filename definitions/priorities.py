"""Task priorities: the 0-9 scale, its default, and which setting wins.

A priority orders the *backlog* of a function pool — when tasks wait for a free replica
slot, higher ones start first (``9`` is the most urgent). It is set on a workflow (the
default for its runs), on a run when it is started (overriding the workflow's) and on a
node (overriding both, for that node's tasks). Pure: the wire contract and the run engine
both read it.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from actorflow.definitions.errors import InputError

MIN_PRIORITY: Final = 0
MAX_PRIORITY: Final = 9
DEFAULT_PRIORITY: Final = 5
"""What a workflow that says nothing runs at; its tasks keep the pool's original subject."""
PRIORITIES: Final = tuple(range(MIN_PRIORITY, MAX_PRIORITY + 1))

Priority = Annotated[int, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY, strict=True)]
"""A priority as a definition or a request writes it: an integer 0-9 (not ``"5"``, not 5.0)."""


def check_priority(value: object, *, field: str = "priority") -> int | None:
    """`value` as a run's priority (None: the workflow's); `InputError` naming `field` for
    anything but an integer 0-9 — before anything is started."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{field} must be an integer {MIN_PRIORITY}-{MAX_PRIORITY}, got {value!r}")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InputError(
            f"{field} must be {MIN_PRIORITY}-{MAX_PRIORITY} (9 most urgent), got {value}"
        )
    return value


def resolve_priority(node: int | None, run: int | None, workflow: int | None) -> int:
    """The priority a task is queued at: the node's, else the run's, else the workflow's,
    else `DEFAULT_PRIORITY` (the most specific setting wins)."""
    for value in (node, run, workflow):
        if value is not None:
            return value
    return DEFAULT_PRIORITY


__all__ = [
    "DEFAULT_PRIORITY",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "PRIORITIES",
    "Priority",
    "check_priority",
    "resolve_priority",
]
