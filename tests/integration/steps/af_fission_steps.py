"""Stand-ins for the Fission functions the Fission examples call (imported by replicas
through codeDir): a deterministic `fortune` and a `whalesay` that says its body."""

from __future__ import annotations

from typing import Any

FORTUNE = "You will convert many workflows."


def fortune(**_: Any) -> str:
    return FORTUNE


def whalesay(body: Any = None, default: Any = None, **_: Any) -> str:
    said = body if body is not None else default
    return f"whale says: {said}"
