"""Retrying NATS calls through a server restart, and the one table of NATS error codes.

Every JetStream error the engine reacts to is translated here, so no other module compares
error codes where they surface.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: JetStream's "wrong last sequence": an append's expected-sequence header did not match.
WRONG_LAST_SEQUENCE = 10071


def is_wrong_last_sequence(exc: BaseException) -> bool:
    """Did the server refuse an append because someone appended first (the fence)?"""
    return isinstance(exc, APIError) and exc.err_code == WRONG_LAST_SEQUENCE


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, NatsTimeoutError | NoRespondersError | ConnectionClosedError | TimeoutError):
        return True
    return isinstance(exc, APIError) and not is_wrong_last_sequence(exc) and (exc.code or 0) >= 500


async def with_retries(op: Callable[[], Awaitable[_T]], what: str) -> _T:
    """Retry transient NATS failures (server restarting, reconnecting) with capped backoff.

    Safe only for idempotent operations: every publish here carries a `Nats-Msg-Id`.
    """
    delay = 0.05
    while True:
        try:
            return await op()
        except Exception as exc:
            if not _transient(exc):
                raise
            log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
