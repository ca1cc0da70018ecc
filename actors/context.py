"""What a running step can know about itself."""

from __future__ import annotations

import logging
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
