"""Step bodies shared by the engine and the plain-Ray baselines."""

from __future__ import annotations

import time
from typing import Any


def noop(**_: Any) -> None:
    return None


def stamp(**_: Any) -> float:
    """When the body started, on this machine's clock (the benchmark runs on one machine)."""
    return time.time()
