"""The one table of NATS / JetStream errors: what each means in actorflow's error tree.

Every nats-py error the engine reacts to is recognised here, so no other module compares
error codes or picks nats-py exception classes where they surface. First match wins:

=====================================================  ==================================
nats-py raises                                         actorflow
=====================================================  ==================================
``APIError`` with ``err_code`` 10071 (wrong last       `FencedError` — someone appended
sequence), ``KeyWrongLastSequenceError``               first (the fence, a KV revision)
``nats.js.errors.NotFoundError`` and its subclasses    `NotFoundError` — nothing there
(``KeyNotFoundError``, ``KeyDeletedError``,
``BucketNotFoundError``, ``ObjectNotFoundError`` …;
a 404 of any JetStream API call)
``NoStreamResponseError`` (a publish no stream         `NotFoundError` — no stream for
captures)                                              the subject
``nats.errors.TimeoutError``, ``NoRespondersError``,   `ClusterUnavailableError` —
``ConnectionClosedError``, ``TimeoutError``, an        transient: retried by
``APIError`` with status >= 500                        `with_retries`
``NoServersError``, ``ConnectionReconnectingError``,   `ClusterUnavailableError` — not
``StaleConnectionError``, ``ConnectionDrainingError``  retried in place
anything else (e.g. ``BadRequestError``: a stream or   unchanged: the caller decides
bucket created concurrently)
=====================================================  ==================================

Where a nats-py error is an answer rather than a failure, catch the class tuples named
here (`NOT_FOUND`, `NO_STREAM`, `BAD_REQUEST`, `API_ERROR`) or use `not_found_as`;
elsewhere `translate`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from nats.errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
    ConnectionReconnectingError,
    NoRespondersError,
    NoServersError,
    StaleConnectionError,
)
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import (
    APIError,
    BadRequestError,
    KeyWrongLastSequenceError,
    NoStreamResponseError,
)
from nats.js.errors import NotFoundError as NatsNotFoundError

from actorflow.definitions.errors import ClusterUnavailableError, FencedError, NotFoundError

#: JetStream's "wrong last sequence": an append's expected-sequence header did not match.
WRONG_LAST_SEQUENCE = 10071

NOT_FOUND: Final = (NatsNotFoundError,)
"""What nats-py raises when a stream, consumer, message, bucket, key or object is not there:
catch these where absence is an answer (``except NOT_FOUND: return None``)."""

API_ERROR: Final = (APIError,)
"""Any error answer of the JetStream API (a refused configuration, a limit, a 404 …): catch
these where the server's `reason` is passed on in an error of our own."""

NO_STREAM: Final = (NoStreamResponseError,)
"""A JetStream publish that no stream captures: catch these where a plain publish will do."""

BAD_REQUEST: Final = (BadRequestError,)
"""The server refused a request as asked (status 400), e.g. a stream or bucket that another
actor created a moment ago: catch these where "it exists already" is an answer."""

_TRANSIENT: Final = (NatsTimeoutError, NoRespondersError, ConnectionClosedError, TimeoutError)
_DISCONNECTED: Final = (
    NoServersError,
    ConnectionReconnectingError,
    StaleConnectionError,
    ConnectionDrainingError,
)


def is_wrong_last_sequence(exc: BaseException) -> bool:
    """Did the server refuse a write because someone wrote first (the fence)?"""
    if isinstance(exc, KeyWrongLastSequenceError):
        return True
    return isinstance(exc, APIError) and getattr(exc, "err_code", None) == WRONG_LAST_SEQUENCE


def is_not_found(exc: BaseException) -> bool:
    """Is `exc` nats-py's "there is nothing there" (see `NOT_FOUND`)?"""
    return isinstance(exc, NOT_FOUND)


def is_transient(exc: BaseException) -> bool:
    """Will the same call likely succeed shortly (a server restarting, a reconnect)?"""
    if isinstance(exc, _TRANSIENT):
        return True
    return (
        isinstance(exc, APIError)
        and not is_wrong_last_sequence(exc)
        and (getattr(exc, "code", None) or 0) >= 500
    )


def translate(
    exc: BaseException, *, kind: str = "", name: str = "", address: str = "nats"
) -> BaseException:
    """The error of actorflow's tree that `exc` means (see the table), or `exc` itself.

    `kind` and `name` say what was asked for (``"run"``, a run id), for `NotFoundError` and
    `FencedError`; `address` where NATS was, for `ClusterUnavailableError`.
    """
    what = f"{kind} {name}".strip() or "write"
    if is_wrong_last_sequence(exc):
        return FencedError(f"{what}: another writer came first ({exc})")
    if is_not_found(exc):
        return NotFoundError(kind or "resource", name or reason(exc))
    if isinstance(exc, NO_STREAM):
        return NotFoundError(kind or "stream for subject", name)
    if is_transient(exc) or isinstance(exc, _DISCONNECTED):
        return ClusterUnavailableError("NATS", address, str(exc) or type(exc).__name__)
    return exc


@contextlib.contextmanager
def not_found_as(kind: str, name: str) -> Iterator[None]:
    """Raise nats-py's not-found (see `NOT_FOUND`) inside as ``NotFoundError(kind, name)``;
    every other error passes unchanged."""
    try:
        yield
    except NOT_FOUND as exc:
        raise translate(exc, kind=kind, name=name) from None


def reason(exc: BaseException) -> str:
    """What the server said (a JetStream API error's description), else the error's text."""
    return getattr(exc, "description", None) or str(exc)
