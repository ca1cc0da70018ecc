"""`actorflow up --nats-servers 3` / `status` / `down` with a home of its own: three
nats-servers as one JetStream cluster under a private Ray head.

Heavy (a second Ray head), so one test covers the whole cycle.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faults_support as fs
import pytest
from lifecycle_support import cli, home_env, running

from actorflow.cluster import lifecycle
from actorflow.cluster.settings import Settings
from actorflow.definitions import events as ev


@pytest.mark.timeout(420)
def test_up_with_three_nats_servers_status_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = home_env(home)
    ray_temp = lifecycle._ray_temp_dir(Settings(home=home))
    try:
        started = cli(env, "up", "--nats-servers", "3")
        assert started.returncode == 0, started.stderr
        nats = json.loads((home / "run" / "cluster.json").read_text())["nats"]
        servers = nats["servers"]
        assert [s["name"] for s in servers] == ["af-0", "af-1", "af-2"]
        assert nats["url"] == ",".join(s["url"] for s in servers)
        assert nats["stream_replicas"] == 3
        pids = [int(s["pid"]) for s in servers]
        assert all(running(pid) for pid in pids)
        for server in servers:
            assert server["url"] in started.stdout
        # The engine's streams and buckets, and the REST API's bucket, at three replicas.
        names = [
            ev.STREAM_HISTORY,
            ev.STREAM_TASKS,
            ev.kv_stream(ev.KV_RUNS),
            ev.kv_stream(ev.KV_API),
        ]
        infos = fs.stream_infos(nats["url"], names)
        assert {n: i.config.num_replicas for n, i in infos.items()} == dict.fromkeys(names, 3)

        other = cli(env, "up", "--nats-servers", "1")
        assert other.returncode != 0
        assert "up with 3 nats-server(s), not 1" in other.stderr
        assert "Traceback" not in other.stderr

        status = cli(env, "status", "--output", "json")
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)
        assert shown["nats"] == nats["url"]
        history = next(s for s in shown["streams"] if s["stream"] == ev.STREAM_HISTORY)
        assert history["replicas"] == 3
        assert history["leader"] in {"af-0", "af-1", "af-2"}

        stopped = cli(env, "down")
        assert stopped.returncode == 0, stopped.stderr
        for i, pid in enumerate(pids):
            assert f"stopped nats {i} (pid {pid})" in stopped.stdout
        assert not any(running(pid) for pid in pids)
        assert not (home / "run" / "cluster.json").exists()
    finally:
        lifecycle.down(Settings(home=home))
        shutil.rmtree(ray_temp, ignore_errors=True)
