"""`actorflow up` / `status` / `down` with a home of their own: a second, private cluster.

Heavy (a second Ray head), so one test covers the whole cycle.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import psutil
from lifecycle_support import cli, home_env, running

from actorflow.cluster import lifecycle, nats_process
from actorflow.cluster.settings import Settings


def test_up_status_down_leaves_nothingrunning(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = home_env(home)
    ray_temp = lifecycle._ray_temp_dir(Settings(home=home))
    try:
        started = cli(env, "up")
        assert started.returncode == 0, started.stderr
        state = json.loads((home / "run" / "cluster.json").read_text())
        nats_pid, ray_pid = int(state["nats"]["pid"]), int(state["ray"]["pid"])
        assert running(nats_pid)
        assert running(ray_pid)
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

        again = cli(env, "up")
        assert again.returncode == 0, again.stderr
        assert "already up" in again.stdout

        status = cli(env, "status")
        assert status.returncode == 0, status.stderr
        assert state["nats"]["url"] in status.stdout
        assert "AF_HISTORY" in status.stdout

        # Workers started since `up` (the controller's run actors) must go too.
        ray_tree += [p.pid for p in psutil.Process(ray_pid).children(recursive=True)]
        stopped = cli(env, "down")
        assert stopped.returncode == 0, stopped.stderr
        assert not (home / "run" / "cluster.json").exists()
        survivors = [pid for pid in [nats_pid, ray_pid, api_pid, *ray_tree] if running(pid)]
        assert survivors == [], [psutil.Process(p).cmdline() for p in survivors]

        gone = cli(env, "status")
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
