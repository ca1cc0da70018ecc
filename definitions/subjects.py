"""NATS subject patterns: syntax, matching and overlap — pure string logic, no NATS.

A trigger may listen on any subject pattern (``orders.*.created``, ``metrics.>``) except
actorflow's own internal subjects: a trigger on ``af.run.>`` would read run histories, and
an ingress stream capturing them would collide with ``AF_HISTORY``. Lifecycle events
(``af.events.>``) are the one internal family a trigger may read.
"""

from __future__ import annotations

from typing import Final

from actorflow.definitions.events.names import EVENT_SUBJECTS, RESERVED_SUBJECTS

INTERNAL: Final = (RESERVED_SUBJECTS,)
"""Subjects reserved by actorflow (runs, tasks, control, signals, triggers …)."""
OPEN_INTERNAL: Final = EVENT_SUBJECTS
"""The part of the reserved space anyone may subscribe to."""


def check_pattern(pattern: str) -> str | None:
    """Why `pattern` is not a valid subject pattern, or None if it is."""
    if not pattern or pattern != pattern.strip() or " " in pattern:
        return "a subject is non-empty and holds no spaces"
    tokens = pattern.split(".")
    for i, token in enumerate(tokens):
        if not token:
            return f"empty token in subject {pattern!r}"
        if ">" in token and (token != ">" or i != len(tokens) - 1):
            return f"'>' must be a whole last token in {pattern!r}"
        if "*" in token and token != "*":
            return f"'*' must be a whole token in {pattern!r}"
    return None


def matches(pattern: str, subject: str) -> bool:
    """Does the literal `subject` match `pattern` (with ``*`` and ``>`` wildcards)?"""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def overlap(a: str, b: str) -> bool:
    """Could some literal subject match both patterns?"""
    pa, pb = a.split("."), b.split(".")
    for i in range(max(len(pa), len(pb))):
        ta = pa[i] if i < len(pa) else None
        tb = pb[i] if i < len(pb) else None
        if ta == ">" or tb == ">":
            return ta is not None and tb is not None
        if ta is None or tb is None:
            return False
        if ta != tb and "*" not in (ta, tb):
            return False
    return True


def covers(a: str, b: str) -> bool:
    """Does every subject matching `b` also match `a`?"""
    pa, pb = a.split("."), b.split(".")
    for i, ta in enumerate(pa):
        if ta == ">":
            return len(pb) > i
        if i >= len(pb):
            return False
        tb = pb[i]
        if tb == ">" or (ta != "*" and (tb == "*" or ta != tb)):
            return False
    return len(pa) == len(pb)


def check_trigger_subject(pattern: str) -> str | None:
    """Why a trigger may not listen on `pattern`, or None if it may."""
    problem = check_pattern(pattern)
    if problem:
        return problem
    if covers(OPEN_INTERNAL, pattern):
        return None
    for internal in INTERNAL:
        if overlap(internal, pattern):
            return (
                f"subject {pattern!r} overlaps actorflow's internal subjects ({internal}); "
                f"only {OPEN_INTERNAL} may be used there"
            )
    return None


def minimal_cover(patterns: list[str]) -> list[str]:
    """The patterns no other pattern of the list covers (a stream refuses overlapping
    duplicates such as ``a.*`` beside ``a.b``), sorted."""
    unique = sorted(set(patterns))
    return [p for p in unique if not any(q != p and covers(q, p) for q in unique)]
