"""The API's pure parts: the access policy, the rate limit, the error table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actorflow.definitions.errors import (
    ControlError,
    DefinitionError,
    ExpressionError,
    NotFoundError,
)
from actorflow.server.access import Ownership, User, allowed, may_create
from actorflow.server.errors import ApiError, from_exception
from actorflow.server.ratelimit import RateLimiter

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _user(name: str, **roles: str) -> User:
    return User.model_validate({"name": name, "roles": roles, "created_at": AT})


PRIVATE = Ownership(owner="ada", namespace="a", visibility="private")
PUBLIC = Ownership(owner="ada", namespace="a", visibility="public")


@pytest.mark.parametrize(
    ("user", "private", "public"),
    [
        # (see, run, control, change) on each
        (_user("ada"), "1111", "1111"),  # the owner, with no role at all
        (_user("v", a="viewer"), "1000", "1100"),
        (_user("o", a="operator"), "1110", "1110"),
        (_user("e", a="editor"), "1111", "1111"),
        (_user("x", b="admin"), "0000", "1100"),  # another namespace's admin
        (_user("s", **{"*": "viewer"}), "1000", "1100"),  # every namespace
        (_user("n"), "0000", "1100"),
    ],
)
def test_the_policy(user: User, private: str, public: str) -> None:
    verbs = ("see", "run", "control", "change")
    for resource, expected in ((PRIVATE, private), (PUBLIC, public)):
        got = "".join("1" if allowed(user, v, resource) else "0" for v in verbs)  # type: ignore[arg-type]
        assert got == expected, (user.name, resource.visibility)


def test_creating_needs_editor_of_the_namespace() -> None:
    assert may_create(_user("e", a="editor"), "a")
    assert not may_create(_user("e", a="editor"), "b")
    assert not may_create(_user("o", a="operator"), "a")
    assert may_create(_user("r", **{"*": "admin"}), "z")


def test_the_bucket_refills_at_its_rate_and_says_when_to_retry() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    for _ in range(3):
        limiter.take("t")
    with pytest.raises(ApiError) as refused:
        limiter.take("t")
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "1"}
    limiter.take("other")  # buckets are per token
    now[0] = 0.5  # one request's worth refilled
    limiter.take("t")
    with pytest.raises(ApiError):
        limiter.take("t")
    now[0] = 100.0  # never more than the burst
    for _ in range(3):
        limiter.take("t")
    with pytest.raises(ApiError):
        limiter.take("t")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFoundError("run", "r-1"), 404, "not_found"),
        (ControlError("run r-1 is SUCCEEDED"), 409, "conflict"),
        (
            DefinitionError.single("bad", file="f", line=3, field="spec.x"),
            422,
            "definition_invalid",
        ),
        (ExpressionError("1 +", "no"), 422, "definition_invalid"),  # a subclass, first match
        (ApiError(429, "rate_limited", "slow down"), 429, "rate_limited"),
        (RuntimeError("boom"), 500, "internal"),
    ],
)
def test_one_table_maps_the_error_tree(error: Exception, status: int, code: str) -> None:
    response = from_exception(error)
    assert response.status_code == status
    assert f'"code":"{code}"'.encode() in response.body


def test_an_idempotency_key_names_one_run_per_caller_and_workflow() -> None:
    from actorflow.definitions import events as ev
    from actorflow.server.routes_runs import idempotent_run_id

    first = idempotent_run_id("shop", "order-17", "ada")
    assert first == idempotent_run_id("shop", "order-17", "ada")
    assert ev.run_id_problem(first) is None
    others = {
        idempotent_run_id("shop", "order-18", "ada"),
        idempotent_run_id("shop", "order-17", "bob"),  # another caller's key is theirs
        idempotent_run_id("shop2", "order-17", "ada"),
    }
    assert first not in others
    assert len(others) == 3
    assert ev.run_id_problem(idempotent_run_id("x" * 200, "k")) is None  # long names fit
    with pytest.raises(ApiError) as bad:
        idempotent_run_id("shop", "has space")
    assert bad.value.status == 422
