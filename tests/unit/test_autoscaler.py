"""The scaling policy, driven without a cluster: bounds, cold start, up / down delays."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actorflow.actors.functions.autoscaler import Scaler, needed
from actorflow.definitions.models import Replicas


def bounds(**kw: object) -> Replicas:
    return Replicas.model_validate({"min": 0, "max": 4, "downDelay": "10s", **kw})


def test_need_is_work_over_target_within_bounds() -> None:
    b = bounds()
    assert needed(0, 0, 2, b) == 0
    assert needed(1, 0, 2, b) == 1
    assert needed(3, 2, 2, b) == 3
    assert needed(1000, 0, 2, b) == 4
    assert needed(0, 0, 2, bounds(min=1)) == 1


@given(
    pending=st.integers(-5, 10_000),
    in_flight=st.integers(-5, 10_000),
    target=st.integers(1, 50),
    lo=st.integers(0, 8),
    extra=st.integers(0, 8),
)
def test_need_never_leaves_the_bounds(
    pending: int, in_flight: int, target: int, lo: int, extra: int
) -> None:
    b = bounds(min=lo, max=max(lo + extra, 1))
    assert b.min <= needed(pending, in_flight, target, b) <= b.max


def test_a_cold_start_is_not_delayed() -> None:
    b = bounds(upDelay="1h")
    assert Scaler(desired=0).step(2, now=0.0, bounds=b).desired == 2


def test_growth_waits_for_the_up_delay() -> None:
    b = bounds(upDelay="5s")
    s = Scaler(desired=1).step(3, now=100.0, bounds=b)
    assert s.desired == 1
    s = s.step(3, now=104.0, bounds=b)
    assert s.desired == 1
    s = s.step(4, now=105.0, bounds=b)
    assert s.desired == 4  # the latest ask wins once the delay has passed


def test_a_short_lull_keeps_replicas_and_a_long_one_drains_to_zero() -> None:
    b = bounds()
    s = Scaler(desired=3).step(0, now=0.0, bounds=b)
    s = s.step(0, now=9.0, bounds=b)
    assert s.desired == 3
    s = s.step(3, now=9.5, bounds=b)  # work came back: the lull is forgotten
    assert (s.desired, s.asking) == (3, None)
    s = s.step(0, now=10.0, bounds=b)
    s = s.step(0, now=19.0, bounds=b)
    assert s.desired == 3
    assert s.step(0, now=20.0, bounds=b).desired == 0


def test_a_reversal_restarts_the_clock() -> None:
    b = bounds(upDelay="5s")
    s = Scaler(desired=2).step(4, now=0.0, bounds=b)  # asks up at 0
    s = s.step(1, now=4.0, bounds=b)  # now asks down: its own delay starts at 4
    assert s.desired == 2
    assert s.step(1, now=13.0, bounds=b).desired == 2
    assert s.step(1, now=14.0, bounds=b).desired == 1


def test_zero_delays_act_at_once() -> None:
    b = bounds(upDelay=0, downDelay=0)
    assert Scaler(desired=1).step(4, now=0.0, bounds=b).desired == 4
    assert Scaler(desired=4).step(1, now=0.0, bounds=b).desired == 1
