"""Retrying NATS calls through a server restart.

Which failures are worth retrying is decided by the one table of NATS errors
(`actorflow.actors.store.errors`); `WRONG_LAST_SEQUENCE` and `is_wrong_last_sequence` are
re-exported from it for the modules that import them from here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from actorflow.actors.store.errors import WRONG_LAST_SEQUENCE, is_transient, is_wrong_last_sequence

log = logging.getLogger(__name__)

_T = TypeVar("_T")

__all__ = ["WRONG_LAST_SEQUENCE", "is_wrong_last_sequence", "with_retries"]


async def with_retries(op: Callable[[], Awaitable[_T]], what: str) -> _T:
    """Retry transient NATS failures (server restarting, reconnecting) with capped backoff.

    Safe only for idempotent operations: every publish here carries a `Nats-Msg-Id`.
    """
    delay = 0.05
    while True:
        try:
            return await op()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
