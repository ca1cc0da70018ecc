"""Step bodies shared by the engine and the plain-Ray baselines."""

from __future__ import annotations

import time
from typing import Any


def noop(**_: Any) -> None:
    return None


def stamp(**_: Any) -> float:
    """When the body started, on this machine's clock (the benchmark runs on one machine)."""
    return time.time()


def work(ms: int = 50, **_: Any) -> None:
    """Stands for a task that takes `ms` of wall time (I/O-like: it sleeps)."""
    time.sleep(ms / 1000)
