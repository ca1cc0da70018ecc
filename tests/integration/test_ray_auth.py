"""Ray token authentication on `actorflow up`'s cluster, with a home of its own.

`up` writes the token file (0600) and starts the head with token auth and the dashboard on
127.0.0.1; a client of this machine finds the token through cluster.json and runs a
workflow, while one without the token, with a wrong one or with an unreadable file gets one
line naming what to fix. Clients are CLI subprocesses: this process has the session's Ray.
Heavy (a second Ray head), so one test covers the whole cycle.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest
from faults_support import wait_for
from lifecycle_support import cli, home_env

from actorflow.cluster import lifecycle, nats_process
from actorflow.cluster.settings import Settings

HELLO = Path(__file__).parents[2] / "examples" / "hello" / "workflow.yaml"


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 1 with a single `error:` line (no traceback, no Ray retry warnings) that says
    each of `needles`."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: Ray unavailable at "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def _listeners(port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def _private_token(path: Path, token: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)
    return path


@pytest.mark.timeout(600)
def test_up_with_token_auth_admits_only_the_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = home_env(
        home,
        ACTORFLOW_RAY_NUM_CPUS="2",
        ACTORFLOW_METRICS_PORT="0",
        ACTORFLOW_WEBHOOK_PORT="0",
        # The token check waits this long for the GCS (then leaves it to `ray.init`, whose
        # refusal is 20 s of warnings): ample on a loaded machine.
        ACTORFLOW_CONNECT_TIMEOUT="60",
        RAY_USAGE_STATS_ENABLED="0",
        # A stale mode in the caller's environment: `up` and its clients go by settings
        # and cluster.json, not by it.
        RAY_AUTH_MODE="disabled",
    )
    ray_temp = lifecycle._ray_temp_dir(Settings(home=home))
    try:
        started = cli(env, "up")
        assert started.returncode == 0, started.stderr
        token_file = home / "ray-auth-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) == 64
        ray = json.loads((home / "run" / "cluster.json").read_text())["ray"]
        assert (ray["auth_mode"], ray["token_file"]) == ("token", str(token_file))

        # The dashboard: on loopback only, and behind the token even there.
        dashboard = httpx.URL(ray["dashboard"])
        assert dashboard.host == "127.0.0.1"
        # (The head starts its dashboard after its GCS, which is what `up` waits for.)
        listening = wait_for(lambda: _listeners(int(dashboard.port or 0)), 60, "the dashboard")
        assert listening == {"127.0.0.1"}
        version = str(dashboard.join("/api/version"))
        assert httpx.get(version, timeout=10).status_code == 401
        bearer = {"authorization": f"Bearer {token}"}
        assert httpx.get(version, headers=bearer, timeout=10).status_code == 200

        # A client of this machine: the token from cluster.json, a workflow runs.
        applied = cli(env, "apply", "-f", str(HELLO))
        assert applied.returncode == 0, applied.stderr
        ran = cli(env, "run", "hello", "-i", "name=Ada", "--wait", "--timeout", "180")
        assert ran.returncode == 0, ran.stderr
        assert "ADA" in json.loads(ran.stdout)["message"]

        # The same Ray joined by address, as from another machine: cluster.json's token
        # is then not used (its NATS still is).
        joined = {**env, "ACTORFLOW_RAY_ADDRESS": ray["address"]}
        _one_line_error(
            cli(joined, "workflows", "list"), "requires a token", "ACTORFLOW_RAY_TOKEN_FILE"
        )
        wrong = _private_token(tmp_path / "wrong-token", secrets.token_hex(32))
        _one_line_error(
            cli({**joined, "ACTORFLOW_RAY_TOKEN_FILE": str(wrong)}, "workflows", "list"),
            f"refused the token from {wrong}",
        )
        wrong.chmod(0o644)
        _one_line_error(
            cli({**joined, "ACTORFLOW_RAY_TOKEN_FILE": str(wrong)}, "workflows", "list"),
            str(wrong),
            "chmod 600",
        )
        right = cli({**joined, "ACTORFLOW_RAY_TOKEN_FILE": str(token_file)}, "workflows", "list")
        assert right.returncode == 0, right.stderr
        assert "hello" in right.stdout

        # This machine's token file gone: its clients say which file.
        token_file.rename(tmp_path / "kept-token")
        _one_line_error(
            cli(env, "workflows", "list"), f"cannot read the Ray token file {token_file}"
        )
        (tmp_path / "kept-token").rename(token_file)

        stopped = cli(env, "down")
        assert stopped.returncode == 0, stopped.stderr
        assert token_file.read_text().strip() == token  # kept for the next `up`
    finally:
        lifecycle.down(Settings(home=home))
        shutil.rmtree(ray_temp, ignore_errors=True)
        assert not any(
            nats_process.alive(int(entry.get("pid", 0)))
            for entry in lifecycle.status(Settings(home=home)).values()
        )
