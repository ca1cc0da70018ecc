"""`actorflow up` / `status` / `down` with a home of their own: a second, private cluster.

Heavy (a second Ray head), so one test covers the whole cycle.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from actorflow.cluster import lifecycle, nats_process
from actorflow.cluster.settings import Settings


def _cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_up_status_down_leaves_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_") and k != "RAY_ADDRESS"
    }
    env.update(
        ACTORFLOW_HOME=str(home),
        ACTORFLOW_RAY_NUM_CPUS="1",
        ACTORFLOW_API_PORT="0",  # parallel sessions on one machine: never a fixed port
        RAY_USAGE_STATS_ENABLED="0",
        COLUMNS="200",
    )
    ray_temp = lifecycle._ray_temp_dir(Settings(home=home))
    try:
        started = _cli(env, "up")
        assert started.returncode == 0, started.stderr
        state = json.loads((home / "run" / "cluster.json").read_text())
        nats_pid, ray_pid = int(state["nats"]["pid"]), int(state["ray"]["pid"])
        assert _running(nats_pid)
        assert _running(ray_pid)
        assert state["ray"]["address"].startswith("127.0.0.1:")
        ray_tree = [p.pid for p in psutil.Process(ray_pid).children(recursive=True)]
        assert any("raylet" in psutil.Process(pid).name() for pid in ray_tree)
        api_pid = int(state["api"]["pid"])  # the REST API, with the admin token it made
        assert state["api"]["url"] in started.stdout
        assert httpx.get(f"{state['api']['url']}/healthz").json() == {"status": "ok"}
        admin = (home / "api-admin-token").read_text().strip()
        runs = httpx.get(
            f"{state['api']['url']}/api/v1/runs", headers={"authorization": f"Bearer {admin}"}
        )
        assert runs.status_code == 200, runs.text

        again = _cli(env, "up")
        assert again.returncode == 0, again.stderr
        assert "already up" in again.stdout

        status = _cli(env, "status")
        assert status.returncode == 0, status.stderr
        assert state["nats"]["url"] in status.stdout
        assert "AF_HISTORY" in status.stdout

        # Workers started since `up` (the controller's run actors) must go too.
        ray_tree += [p.pid for p in psutil.Process(ray_pid).children(recursive=True)]
        stopped = _cli(env, "down")
        assert stopped.returncode == 0, stopped.stderr
        assert not (home / "run" / "cluster.json").exists()
        survivors = [pid for pid in [nats_pid, ray_pid, api_pid, *ray_tree] if _running(pid)]
        assert survivors == [], [psutil.Process(p).cmdline() for p in survivors]

        gone = _cli(env, "status")
        assert gone.returncode == 1
        assert "actorflow up" in gone.stderr
        assert "Traceback" not in gone.stderr
    finally:
        lifecycle.down(Settings(home=home))
        shutil.rmtree(ray_temp, ignore_errors=True)
        assert not any(
            nats_process.alive(int(entry.get("pid", 0)))
            for entry in lifecycle.status(Settings(home=home)).values()
        )
