"""What a running step can know about itself."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepContext:
    """Passed to a handler that declares a `ctx` parameter.

    `idempotency_key` is the same for every execution of one attempt of one node — also
    when recovery runs an interrupted step again — so side effects can be deduplicated on it.
    """

    run_id: str
    workflow: str
    node: str
    index: int | None
    attempt: int
    idempotency_key: str
    logger: logging.Logger = field(repr=False, compare=False)
    _report: Callable[[float, str], None] = field(
        repr=False, compare=False, default=lambda p, m: None
    )

    def progress(self, percent: float, message: str = "") -> None:
        """Report how far this step has come (0-100); shown by `runs show` and the record.

        Cheap and fire-and-forget: call it as often as is useful.
        """
        self._report(max(0.0, min(100.0, float(percent))), message)
