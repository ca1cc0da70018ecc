"""Which instants of a schedule are due: pure functions of (schedule, cursor, now).

The cursor is the last instant a trigger fired (the last tick appended to its stream), so
a restarted trigger host computes the same instants and, the tick's ``Nats-Msg-Id`` and
the run id both being derived from the instant, each instant starts at most one run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from actorflow.definitions.models import ScheduleSource

SKIP_GRACE = timedelta(seconds=10)
"""Under ``missed: skip`` an instant older than this when noticed counts as missed."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def next_after(source: ScheduleSource, after: datetime) -> datetime:
    """The first instant strictly after `after` (UTC)."""
    if source.every is not None:
        step = source.every
        k = int((after - _EPOCH).total_seconds() // step) + 1
        return _EPOCH + timedelta(seconds=k * step)
    assert source.cron is not None
    local = after.astimezone(ZoneInfo(source.timezone))
    nxt: datetime = croniter(source.cron, local).get_next(datetime)
    return nxt.astimezone(UTC)


def latest_at_or_before(source: ScheduleSource, moment: datetime, limit: int) -> list[datetime]:
    """Up to `limit` instants at or before `moment`, newest first (walked backwards, so a
    week of downtime on a one-second schedule costs `limit` steps, not 600,000)."""
    out: list[datetime] = []
    if source.every is not None:
        step = source.every
        k = int((moment - _EPOCH).total_seconds() // step)
        return [_EPOCH + timedelta(seconds=(k - i) * step) for i in range(limit)]
    assert source.cron is not None
    local = (moment + timedelta(microseconds=1)).astimezone(ZoneInfo(source.timezone))
    it = croniter(source.cron, local)
    for _ in range(limit):
        out.append(it.get_prev(datetime).astimezone(UTC))
    return out


def due(source: ScheduleSource, cursor: datetime, now: datetime) -> list[datetime]:
    """Instants in (cursor, now] to fire now, oldest first, under the missed-run policy:
    ``catchup`` fires each (at most `max_catchup`, the newest), ``once`` the newest only,
    ``skip`` the newest only if it is not older than `SKIP_GRACE` (it is the instant just
    reached, not one missed while nobody was running)."""
    limit = source.max_catchup if source.missed == "catchup" else 1
    recent = [t for t in latest_at_or_before(source, now, limit) if t > cursor]
    if source.missed == "skip":
        recent = [t for t in recent if now - t <= SKIP_GRACE]
    return sorted(recent)
