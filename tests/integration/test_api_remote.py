"""`actorflow.Client` and the `actorflow` CLI through the REST API (``ACTORFLOW_API_URL`` and a
token) against the real engine: the same methods and results as the direct client, the
API's refusals as the same error classes, one line for a bad token or an unreachable URL,
and `UnsupportedError` for what the API does not offer."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_support import Served, serving
from pydantic import SecretStr

import actorflow
from actorflow.cluster.settings import Settings

pytestmark = pytest.mark.integration
TIMEOUT = 60

ECHO = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: remote-echo, version: "1"}
spec:
  inputs:
    x: {type: string, default: hi}
  nodes:
    - id: e
      function: echo@1
      inputs: {value: "${{ inputs.x }}"}
    - id: talk
      needs: [e]
      function: chatty@1
      inputs: {tag: "${{ inputs.x }}", lines: 2}
  outputs:
    y: "${{ nodes.e.output }}"
"""

GATE = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: remote-gate, version: "1"}
spec:
  inputs:
    k: {type: string}
  nodes:
    - id: w
      wait: {signal: remote-go, key: "${{ inputs.k }}"}
    - id: ok
      needs: [w]
      approval: {guidance: "look first", schema: {type: object, required: [who]}}
  outputs:
    got: "${{ nodes.w.output }}"
    who: "${{ nodes.ok.output.who }}"
"""

UNKNOWN_FUNCTION = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: remote-bad, version: "1"}
spec:
  nodes:
    - id: a
      function: no-such-function@1
"""


@pytest.fixture(scope="module")
def served(client: actorflow.Client, settings: Settings) -> Iterator[Served]:
    with serving(settings) as running:
        yield running


@pytest.fixture(scope="module")
def admin_token(served: Served) -> str:
    return served.token("remote-admin", {"*": "admin"})


def _remote(url: str, token: str) -> actorflow.Client:
    return actorflow.Client(Settings(api_url=url, api_token=SecretStr(token)))


@pytest.fixture(scope="module")
def remote(
    served: Served, admin_token: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[actorflow.Client]:
    """A client through the API (an admin's token), with the test workflows applied from a
    file, as `Client.apply(path)` reads one."""
    folder = tmp_path_factory.mktemp("remote-defs")
    (folder / "workflows.yaml").write_text(ECHO + "---\n" + GATE)
    with _remote(served.url, admin_token) as client:
        applied = client.apply(folder / "workflows.yaml")
        assert {(a.kind, a.name) for a in applied} == {
            ("Workflow", "remote-echo"),
            ("Workflow", "remote-gate"),
        }
        yield client


def _until(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)


def test_apply_run_wait_list_and_read_as_the_direct_client_does(
    remote: actorflow.Client, client: actorflow.Client, tmp_path: Path
) -> None:
    assert remote.api_url is not None
    assert client.api_url is None
    run = remote.run("remote-echo", {"x": "hola"})
    assert isinstance(run, actorflow.Run)
    assert run.result(timeout=TIMEOUT) == {"y": "hola"}
    # The direct client sees the same run: it ran on the engine, not somewhere else.
    assert client.get_run(run.run_id).status().status is actorflow.RunStatus.SUCCEEDED
    record = remote.get_run(run.run_id).status()
    assert isinstance(record, actorflow.RunRecord)
    assert record.outputs == {"y": "hola"}
    nodes = {n.node: n for n in run.nodes()}
    assert {n: i.status for n, i in nodes.items()} == {
        "e": actorflow.NodeStatus.SUCCEEDED,
        "talk": actorflow.NodeStatus.SUCCEEDED,
    }
    assert all(isinstance(n, actorflow.NodeInfo) for n in nodes.values())
    listed = remote.runs(workflow="remote-echo")
    assert run.run_id in [r.run_id for r in listed]
    assert remote.runs(status="SUCCEEDED", workflow="remote-echo")[0].status.value == "SUCCEEDED"
    assert [r.run_id for r in remote.runs(status="INTERRUPTED", workflow="remote-echo")] == []
    # Logs, read and followed (the run has finished: following ends by itself).
    texts = [line.text for line in run.logs("talk")]
    assert "hola out 0" in texts
    assert all(isinstance(line, actorflow.LogLine) for line in run.logs())
    assert [line.text for line in run.follow_logs()] == [line.text for line in run.logs()]
    # Definitions read back as models.
    workflows = {w.ref: w for w in remote.workflows()}
    assert workflows["remote-echo@1"] == next(
        w for w in client.workflows() if w.ref == "remote-echo@1"
    )
    assert "echo@1" in {f.ref for f in remote.functions()}
    # A start with a run id starts one run, however often it is asked for.
    first = remote.run("remote-echo", {"x": "once"}, run_id="remote-once")
    again = remote.run("remote-echo", {"x": "once"}, run_id="remote-once")
    assert first.run_id == again.run_id
    assert first.result(timeout=TIMEOUT) == {"y": "once"}
    # A path is checked here, against what the API lists: the file and line of the problem.
    bad = tmp_path / "bad.yaml"
    bad.write_text(UNKNOWN_FUNCTION)
    with pytest.raises(actorflow.DefinitionError) as problem:
        remote.apply(bad)
    assert problem.value.issues[0].file == str(bad)
    assert problem.value.issues[0].line == 7
    assert "remote-bad" not in {w.metadata.name for w in client.workflows()}


def test_errors_come_back_as_the_direct_clients_classes(remote: actorflow.Client) -> None:
    with pytest.raises(actorflow.NotFoundError) as missing:
        remote.run("remote-no-such-workflow")
    assert missing.value.kind == "workflow"
    with pytest.raises(actorflow.NotFoundError):
        remote.get_run("remote-no-such-run").status()
    with pytest.raises(actorflow.InputError):
        remote.run("remote-echo", {"x": 1, "nope": 2})
    done = remote.run("remote-echo", {"x": "done"})
    done.wait(timeout=TIMEOUT)
    with pytest.raises(actorflow.ControlError, match=r"(?i)succeeded"):
        done.cancel("too late")
    with pytest.raises(actorflow.InputError, match="not NAME@VERSION"):
        remote.delete("Workflow", "remote-echo")
    with pytest.raises(actorflow.NotFoundError):
        remote.delete("Workflow", "remote-echo@99")


def test_control_signal_approve_through_the_api(
    remote: actorflow.Client, client: actorflow.Client
) -> None:
    run = remote.run("remote-gate", {"k": "r-1"})
    _until(lambda: run.status().status is actorflow.RunStatus.WAITING, "the run waits")
    run.pause("look")
    _until(lambda: run.status().status is actorflow.RunStatus.PAUSED, "the run is paused")
    accepted = remote.control(run.run_id, "resume", reason="go on")
    assert isinstance(accepted, actorflow.ControlAccepted)
    assert accepted.action == "resume"
    _until(lambda: run.status().status is actorflow.RunStatus.WAITING, "the run waits again")
    with pytest.raises(actorflow.ControlError, match="approval"):
        run.approve("w")
    remote.signal("remote-go", "r-1", {"n": 1})

    def approved() -> bool:
        try:
            run.approve("ok", {"who": "ada"})
        except actorflow.ControlError:  # the signal's wake-up has not reached it yet
            return False
        return True

    _until(approved, "the approval node takes the approval")
    assert run.result(timeout=TIMEOUT) == {"got": {"n": 1}, "who": "ada"}
    stopped = remote.run("remote-gate", {"k": "r-2"})
    _until(lambda: stopped.status().status is actorflow.RunStatus.WAITING, "the run waits")
    stopped.cancel("enough")
    assert stopped.wait(timeout=TIMEOUT).status is actorflow.RunStatus.INTERRUPTED
    ended = remote.run("remote-gate", {"k": "r-3"})
    _until(lambda: ended.status().status is actorflow.RunStatus.WAITING, "the run waits")
    ended.terminate("for good")
    assert ended.wait(timeout=TIMEOUT).status is actorflow.RunStatus.TERMINATED
    assert client.get_run(ended.run_id).status().status is actorflow.RunStatus.TERMINATED


def test_a_viewer_is_refused_an_operators_action(
    remote: actorflow.Client, served: Served, tmp_path: Path
) -> None:
    run = remote.run("remote-gate", {"k": "r-4"})
    viewer_token = served.token("remote-viewer", {"default": "viewer"})
    with _remote(served.url, viewer_token) as viewer:
        assert run.run_id in [r.run_id for r in viewer.runs(workflow="remote-gate")]
        with pytest.raises(actorflow.AuthError) as refused:
            viewer.get_run(run.run_id).pause()
        assert refused.value.status == 403
        assert "remote-viewer may not control" in str(refused.value)
        assert len(str(refused.value).splitlines()) == 1
        with pytest.raises(actorflow.AuthError):
            viewer.run("remote-echo")
    assert run.status().status is not actorflow.RunStatus.PAUSED
    run.terminate("cleanup")


def test_what_the_api_does_not_offer_is_an_unsupported_error(remote: actorflow.Client) -> None:
    run = remote.run("remote-echo", {"x": "u"})
    before = len(remote.runs(workflow="remote-echo"))
    calls: dict[str, Callable[[], object]] = {
        "templates": remote.templates,
        "connections": remote.connections,
        "pools": remote.pools,
        "engine_info": remote.engine_info,
        "stream_stats": remote.stream_stats,
        "disable_trigger": lambda: remote.disable_trigger("t"),
        "webhook_url": remote.webhook_url,
        "view": run.view,
        "break_at": lambda: run.break_at("e"),
        "paused_at": run.paused_at,
        "rerun": lambda: run.rerun("e"),
        "delete template": lambda: remote.delete("Template", "t@1"),
        "break_before": lambda: remote.run("remote-echo", break_before=["e"]),
    }
    for name, call in calls.items():
        with pytest.raises(actorflow.UnsupportedError, match="not offered by the REST API"):
            call()
        assert name  # (named in the failure's traceback)
    assert run.result(timeout=TIMEOUT) == {"y": "u"}
    assert len(remote.runs(workflow="remote-echo")) == before  # break_before started none


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_bad_token_an_unreachable_url_or_no_token_is_one_clear_error(served: Served) -> None:
    with (
        _remote(served.url, "af_0123456789abcdef_nope") as forged,
        pytest.raises(actorflow.AuthError) as refused,
    ):
        forged.runs()
    assert refused.value.status == 401
    assert "refused the token" in str(refused.value)
    assert "ACTORFLOW_API_TOKEN" in str(refused.value)
    dead = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(
        actorflow.ClusterUnavailableError, match=f"unavailable at {re.escape(dead)}"
    ):
        _remote(dead, "af_x_y")
    with pytest.raises(actorflow.InputError, match="no token"):
        actorflow.Client(Settings(api_url=served.url))


# --- the CLI ----------------------------------------------------------------------------------
Remote = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def remote_cli(served: Served, admin_token: str, tmp_path: Path) -> Remote:
    """`actorflow ARGS…` with ACTORFLOW_API_URL and a token, and NATS / Ray addresses that
    lead nowhere: whatever works, worked through the API."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")}
        base.update(
            ACTORFLOW_HOME=str(tmp_path / "home"),
            ACTORFLOW_NATS_URL=f"nats://127.0.0.1:{_free_port()}",
            ACTORFLOW_RAY_ADDRESS=f"127.0.0.1:{_free_port()}",
            ACTORFLOW_API_URL=served.url,
            ACTORFLOW_API_TOKEN=admin_token,
            COLUMNS="250",
        )
        base.update(env)
        return subprocess.run(
            [sys.executable, "-m", "actorflow.cli", *args],
            env=base,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    return run


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_the_cli_goes_through_the_api(
    remote_cli: Remote, remote: actorflow.Client, tmp_path: Path
) -> None:
    file = tmp_path / "cli.yaml"
    file.write_text(ECHO.replace("remote-echo", "remote-cli"))
    applied = remote_cli("apply", "-f", str(file))
    assert applied.returncode == 0, applied.stderr
    assert "remote-cli" in applied.stdout
    assert "created" in applied.stdout
    ran = remote_cli("run", "remote-cli", "-i", "x=from-cli", "--wait", "--timeout", "60")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"y": "from-cli"}
    listed = remote_cli("runs", "list", "-w", "remote-cli", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    (run_id,) = [r["run_id"] for r in json.loads(listed.stdout)]
    assert remote.get_run(run_id).status().outputs == {"y": "from-cli"}
    shown = remote_cli("runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "talk" in shown.stdout
    logs = remote_cli("logs", run_id, "--node", "talk")
    assert logs.returncode == 0, logs.stderr
    assert "from-cli out 1" in logs.stdout
    refused = _one_error_line(remote_cli("runs", "pause", run_id))
    assert "SUCCEEDED" in refused or "succeeded" in refused
    gated = remote.run("remote-gate", {"k": "cli-1"})
    signalled = remote_cli("signal", "remote-go", "cli-1", "-d", '{"n": 2}')
    assert signalled.returncode == 0, signalled.stderr
    cancelled = remote_cli("runs", "cancel", gated.run_id, "--reason", "cli")
    assert cancelled.returncode == 0, cancelled.stderr
    assert gated.wait(timeout=TIMEOUT).status is actorflow.RunStatus.INTERRUPTED


def test_the_cli_says_in_one_line_what_is_wrong(remote_cli: Remote) -> None:
    forged = _one_error_line(remote_cli("runs", "list", ACTORFLOW_API_TOKEN="af_0_nope"))
    assert "refused the token" in forged
    dead = f"http://127.0.0.1:{_free_port()}"
    away = _one_error_line(remote_cli("runs", "list", ACTORFLOW_API_URL=dead))
    assert f"REST API unavailable at {dead}" in away
    untold = _one_error_line(remote_cli("runs", "list", ACTORFLOW_API_TOKEN=""))
    assert "no token" in untold
    templates = _one_error_line(remote_cli("templates", "list"))
    assert "templates(): not offered by the REST API" in templates
    status = _one_error_line(remote_cli("status"))
    assert "not offered by the REST API" in status
