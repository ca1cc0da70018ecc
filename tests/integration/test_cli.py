"""The `actorflow` command, run as a subprocess against the session's cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import actorflow

WORKFLOWS = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: cli-sum, version: "1", description: adds three numbers}
spec:
  inputs:
    a: {type: integer}
    b: {type: integer, default: 2}
  nodes:
    - id: first
      function: add@1
      inputs: {a: "${{ inputs.a }}", b: "${{ inputs.b }}"}
    - id: second
      function: add@1
      inputs: {a: "${{ nodes.first.output }}", b: 10}
  outputs:
    total: "${{ nodes.second.output }}"
---
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: cli-boom, version: "1"}
spec:
  nodes:
    - id: explode
      function: coded-fail@1
      inputs: {code: DISK_FULL, message: no space left}
"""

MALFORMED = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: cli-bad, version: "1"}
spec:
  nodes:
    - id: only
      function: add@1
      needs: [missing]
"""


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow.cli", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def applied(client: actorflow.Client, cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "workflows.yaml"
    path.write_text(WORKFLOWS)
    result = cli(cli_env, "apply", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert "cli-sum" in result.stdout
    assert "cli-boom" in result.stdout
    return cli_env


def test_apply_twice_reports_unchanged(applied: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "again.yaml"
    path.write_text(WORKFLOWS)
    result = cli(applied, "apply", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("unchanged") == 2


def test_run_wait_prints_outputs(applied: dict[str, str]) -> None:
    result = cli(applied, "run", "cli-sum", "--input", "a=3", "--wait", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"total": 15}
    assert "second" in result.stderr  # the live node table


def test_run_inputs_json_and_input_override(applied: dict[str, str]) -> None:
    result = cli(
        applied, "run", "cli-sum", "--inputs-json", '{"a": 1, "b": 1}', "-i", "b=5", "--wait"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"total": 16}


def test_failed_run_exits_1_with_one_line(applied: dict[str, str]) -> None:
    result = cli(applied, "run", "cli-boom", "--wait", "--timeout", "60")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "explode" in errors[0]
    assert "DISK_FULL" in errors[0]
    assert "no space left" in errors[0]
    assert "Traceback" not in result.stderr


def test_run_without_wait_prints_the_id(applied: dict[str, str], client: actorflow.Client) -> None:
    result = cli(applied, "run", "cli-sum", "-i", "a=1")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    assert client.get_run(run_id).result(timeout=60) == {"total": 13}


@pytest.mark.parametrize(
    "args",
    [
        ("run", "cli-sum", "--input", "novalue"),
        ("no-such-command",),
        ("run",),
        ("runs", "list", "--status", "BOGUS"),
    ],
)
def test_usage_errors_exit_2(cli_env: dict[str, str], args: tuple[str, ...]) -> None:
    result = cli(cli_env, *args)
    assert result.returncode == 2
    assert "Usage" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_file_names_file_and_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MALFORMED)
    result = cli(cli_env, "apply", "-f", str(path))
    assert result.returncode == 1
    assert f"{path}:8" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MALFORMED)
    result = cli(cli_env, "--debug", "apply", "-f", str(path))
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_unknown_workflow_is_one_line(cli_env: dict[str, str], client: actorflow.Client) -> None:
    result = cli(cli_env, "run", "no-such-workflow", "--wait")
    assert result.returncode == 1
    assert "no-such-workflow" in result.stderr
    assert "Traceback" not in result.stderr


def test_runs_list_and_show(applied: dict[str, str], client: actorflow.Client) -> None:
    ok = cli(applied, "run", "cli-sum", "-i", "a=2", "--wait")
    assert ok.returncode == 0, ok.stderr
    failed = cli(applied, "run", "cli-boom", "--wait")
    assert failed.returncode == 1
    listed = cli(applied, "runs", "list", "--status", "succeeded", "--workflow", "cli-sum")
    assert listed.returncode == 0, listed.stderr
    assert "cli-sum@1" in listed.stdout
    assert "SUCCEEDED" in listed.stdout
    assert "INTERRUPTED" not in listed.stdout

    interrupted = cli(applied, "runs", "list", "-s", "INTERRUPTED", "-w", "cli-boom", "-n", "1")
    assert interrupted.returncode == 0, interrupted.stderr
    run_id = client.runs("INTERRUPTED", "cli-boom")[0].run_id
    assert run_id in interrupted.stdout, cli(applied, "runs", "list").stdout
    shown = cli(applied, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "explode" in shown.stdout
    assert "DISK_FULL" in shown.stdout
    assert "Traceback" in shown.stdout  # the failed node's traceback, as data
    assert "StepError" in shown.stdout


def test_runs_show_unknown_id(cli_env: dict[str, str], client: actorflow.Client) -> None:
    result = cli(cli_env, "runs", "show", "no-such-run")
    assert result.returncode == 1
    assert "no-such-run" in result.stderr
    assert "not found" in result.stderr


def test_workflows_and_functions_list(applied: dict[str, str]) -> None:
    workflows = cli(applied, "workflows", "list")
    assert workflows.returncode == 0, workflows.stderr
    assert "cli-sum" in workflows.stdout
    assert "adds three numbers" in workflows.stdout
    functions = cli(applied, "functions", "list")
    assert functions.returncode == 0, functions.stderr
    assert "coded-fail" in functions.stdout
    for column in ("replicas", "min-max", "pending", "in flight"):
        assert column in functions.stdout


def test_status(applied: dict[str, str], settings: actorflow.Settings) -> None:
    result = cli(applied, "status")
    assert result.returncode == 0, result.stderr
    assert str(settings.nats_url) in result.stdout
    for expected in ("AF_HISTORY", "AF_TASKS", "add@1", "CPU"):
        assert expected in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "names"),
    [
        ("ACTORFLOW_NATS_URL", "nats://127.0.0.1:1", "NATS unavailable at nats://127.0.0.1:1"),
        ("ACTORFLOW_RAY_ADDRESS", "127.0.0.1:1", "Ray unavailable at 127.0.0.1:1"),
    ],
)
def test_unreachable_cluster_is_one_clear_line(
    cli_env: dict[str, str], variable: str, value: str, names: str
) -> None:
    proc = cli({**cli_env, variable: value}, "runs", "list", timeout=60)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ")
    assert names in lines[-1]
    assert "Traceback" not in proc.stderr
