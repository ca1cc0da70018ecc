"""The embedded default, as a new user gets it: Ray's dashboard is on (127.0.0.1 only,
behind the token in ``$ACTORFLOW_HOME/ray-auth-token``), so `ray.util.state` sees the
engine's actors — each with a stable name and a repr that says what it is — and the engine
serves /metrics. Run in a fresh process with its own home and its own local Ray, as
`actorflow run` would."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HELLO = Path(__file__).parents[2] / "examples" / "hello" / "workflow.yaml"

SCRIPT = textwrap.dedent(
    """
    import json, pathlib, sys, urllib.error, urllib.request
    import actorflow
    from ray.util.state import list_actors

    with actorflow.Client() as client:
        client.apply(sys.argv[1])
        result = client.run("hello", {"name": "Ada"}).result(timeout=120)
        info = client.engine_info()
        # Its own dashboard: other Ray instances on the machine (the session's) are not it.
        actors = list_actors(
            address=info.dashboard_url, filters=[("state", "=", "ALIVE")], detail=True
        )
        version = info.dashboard_url + "/api/version"
        try:
            urllib.request.urlopen(version, timeout=10)
            anonymous = 200
        except urllib.error.HTTPError as e:
            anonymous = e.code
        token = (pathlib.Path(sys.argv[2]) / "ray-auth-token").read_text().strip()
        request = urllib.request.Request(version, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            dashboard_ok = r.status == 200
        with urllib.request.urlopen(info.metrics_url, timeout=10) as r:
            metrics = r.read().decode()
    print(json.dumps({
        "result": result,
        "dashboard": info.dashboard_url,
        "dashboard_ok": dashboard_ok,
        "anonymous": anonymous,
        "metrics": metrics,
        "actors": [
            {"name": a.name, "repr": a.repr_name, "class": a.class_name} for a in actors
        ],
    }))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(300)
def test_embedded_default_has_the_dashboard_and_named_described_actors(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ACTORFLOW_", "RAY_ADDRESS")) and k != "RAY_NAMESPACE"
    }
    env.update(
        ACTORFLOW_HOME=str(tmp_path / "home"),
        ACTORFLOW_METRICS_PORT=str(_free_port()),
        ACTORFLOW_WEBHOOK_PORT="0",
        ACTORFLOW_RAY_NUM_CPUS="2",
        RAY_USAGE_STATS_ENABLED="0",
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(HELLO), str(tmp_path / "home")],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "ADA" in out["result"]["message"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", out["dashboard"]), out["dashboard"]
    assert out["dashboard_ok"]
    assert out["anonymous"] == 401  # the embedded Ray wants its token too
    assert stat.S_IMODE((tmp_path / "home" / "ray-auth-token").stat().st_mode) == 0o600
    assert 'actorflow_runs_total{status="SUCCEEDED",workflow="hello"} 1.0' in out["metrics"]
    actors = {a["name"]: a for a in out["actors"]}
    assert actors["actorflow-controller"]["repr"].startswith("Controller(")
    runs = [a for n, a in actors.items() if n.startswith("af-run-actor-")]
    assert len(runs) == 2, actors
    pattern = r"RunActor\(af-run-actor-\d(-\w+)?, \d+ runs?\)"
    assert all(re.fullmatch(pattern, a["repr"]) for a in runs), runs
    replicas = sorted(a["repr"] for n, a in actors.items() if n.startswith("af-fn-"))
    assert replicas == ["Replica(greet@1 #1)", "Replica(shout@1 #1)"], replicas
