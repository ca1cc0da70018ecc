"""The one table of NATS errors: nats-py's exceptions, built here without a server, and the
errors of actorflow's tree they become."""

from __future__ import annotations

import asyncio
import pickle

import nats.errors
import nats.js.errors as js_errors
import pytest

from actorflow.actors.store import errors as table
from actorflow.actors.store.retry import with_retries
from actorflow.definitions.errors import (
    ActorflowError,
    ClusterUnavailableError,
    FencedError,
    NotFoundError,
)

FENCED = [
    js_errors.APIError(code=400, err_code=10071, description="wrong last sequence: 5"),
    js_errors.BadRequestError(code=400, err_code=10071, description="wrong last sequence: 5"),
    js_errors.KeyWrongLastSequenceError(description="wrong last sequence: 3"),
]
NOT_FOUND = [
    js_errors.NotFoundError(code=404, err_code=10059, description="stream not found"),
    js_errors.NotFoundError(code=404, err_code=10037, description="no message found"),
    js_errors.KeyNotFoundError(),
    js_errors.KeyDeletedError(),
    js_errors.BucketNotFoundError(),
    js_errors.ObjectNotFoundError(),
]
TRANSIENT = [
    nats.errors.TimeoutError(),
    nats.errors.NoRespondersError(),
    nats.errors.ConnectionClosedError(),
    js_errors.FetchTimeoutError(),
    TimeoutError(),
    js_errors.ServiceUnavailableError(code=503, description="JetStream not enabled"),
    js_errors.ServerError(code=500, description="raft"),
    js_errors.APIError(code=503),
]
DISCONNECTED = [
    nats.errors.NoServersError(),
    nats.errors.ConnectionReconnectingError(),
    nats.errors.StaleConnectionError(),
    nats.errors.ConnectionDrainingError(),
]
UNTRANSLATED = [
    js_errors.BadRequestError(code=400, err_code=10058, description="stream name in use"),
    js_errors.APIError(code=409, err_code=10148, description="conflict"),
    nats.errors.BadSubjectError(),
    ValueError("not ours"),
]


@pytest.mark.parametrize("exc", FENCED, ids=repr)
def test_the_wrong_last_sequence_is_the_fence(exc: Exception) -> None:
    assert table.is_wrong_last_sequence(exc)
    assert not table.is_transient(exc)
    mapped = table.translate(exc, kind="run", name="r1")
    assert isinstance(mapped, FencedError)
    assert "run r1" in str(mapped)


@pytest.mark.parametrize("exc", NOT_FOUND, ids=repr)
def test_every_not_found_is_our_not_found(exc: Exception) -> None:
    assert table.is_not_found(exc)
    assert isinstance(exc, table.NOT_FOUND)
    assert not table.is_transient(exc)  # no AttributeError for a KV error without `code`
    mapped = table.translate(exc, kind="run", name="r1")
    assert isinstance(mapped, NotFoundError)
    assert (mapped.kind, mapped.name) == ("run", "r1")


def test_a_publish_no_stream_captures_is_not_found() -> None:
    mapped = table.translate(js_errors.NoStreamResponseError(), name="orders.created")
    assert isinstance(mapped, NotFoundError)
    assert mapped.name == "orders.created"
    assert "stream" in str(mapped)


@pytest.mark.parametrize("exc", TRANSIENT, ids=repr)
def test_transient_failures_are_retried_and_mean_unavailable(exc: Exception) -> None:
    assert table.is_transient(exc)
    mapped = table.translate(exc, address="nats://h:4222")
    assert isinstance(mapped, ClusterUnavailableError)
    assert (mapped.what, mapped.address) == ("NATS", "nats://h:4222")


@pytest.mark.parametrize("exc", DISCONNECTED, ids=repr)
def test_lost_connections_mean_unavailable_but_are_not_retried_in_place(exc: Exception) -> None:
    assert not table.is_transient(exc)
    assert isinstance(table.translate(exc), ClusterUnavailableError)


@pytest.mark.parametrize("exc", UNTRANSLATED, ids=repr)
def test_everything_else_passes_unchanged(exc: Exception) -> None:
    assert table.translate(exc, kind="run", name="r1") is exc
    assert not table.is_transient(exc)
    assert not table.is_not_found(exc)


def test_the_except_tuples() -> None:
    assert isinstance(UNTRANSLATED[0], table.BAD_REQUEST)
    assert isinstance(js_errors.NoStreamResponseError(), table.NO_STREAM)
    assert all(isinstance(e, table.API_ERROR) for e in FENCED + NOT_FOUND)
    assert table.reason(UNTRANSLATED[0]) == "stream name in use"
    assert table.reason(ValueError("plain")) == "plain"


@pytest.mark.parametrize("exc", FENCED + NOT_FOUND + TRANSIENT + DISCONNECTED, ids=repr)
def test_translated_errors_cross_process_boundaries(exc: Exception) -> None:
    mapped = table.translate(exc, kind="run", name="r1")
    assert isinstance(mapped, ActorflowError)
    again = pickle.loads(pickle.dumps(mapped))
    assert type(again) is type(mapped)
    assert str(again) == str(mapped)


def test_not_found_as_raises_ours_and_lets_the_rest_pass() -> None:
    missing = pytest.raises(NotFoundError, match="run 'r1' not found")
    with missing as info, table.not_found_as("run", "r1"):
        raise js_errors.KeyNotFoundError()
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    timeout = nats.errors.TimeoutError()
    with pytest.raises(nats.errors.TimeoutError) as raised, table.not_found_as("run", "r1"):
        raise timeout
    assert raised.value is timeout


async def test_with_retries_retries_only_what_the_table_calls_transient() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise nats.errors.NoRespondersError()
        return "ok"

    assert await with_retries(flaky, "flaky") == "ok"
    assert len(calls) == 3

    async def missing() -> None:
        calls.append(1)
        raise js_errors.KeyNotFoundError()

    calls.clear()
    with pytest.raises(js_errors.KeyNotFoundError):
        await with_retries(missing, "missing")
    assert len(calls) == 1

    async def fenced() -> None:
        raise FENCED[0]

    with pytest.raises(js_errors.APIError):
        await asyncio.wait_for(with_retries(fenced, "fenced"), 1.0)
