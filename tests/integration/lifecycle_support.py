"""What the `actorflow up` tests share: the CLI in a subprocess, an environment of a home
of its own, and whether a recorded process still runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil


def cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def home_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without any actorflow setting, Ray address or Ray token, plus a
    private home on a small, portless footprint (parallel sessions share the machine)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ACTORFLOW_", "RAY_AUTH_TOKEN")) and k != "RAY_ADDRESS"
    }
    env.update(
        ACTORFLOW_HOME=str(home),
        ACTORFLOW_RAY_NUM_CPUS="1",
        ACTORFLOW_API_PORT="0",  # never a fixed port
        RAY_USAGE_STATS_ENABLED="0",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
