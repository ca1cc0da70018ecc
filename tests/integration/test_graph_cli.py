"""`actorflow graph NAME`: a registered workflow drawn from the engine's registry."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import actorflow

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow.cli", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _version(version: str) -> actorflow.Workflow:
    b = actorflow.WorkflowBuilder("graph-cli", version=version)
    first = b.node("first", "echo@1", inputs={"x": 1})
    b.node("second", "echo@1", needs=[first])
    if version == "2":
        b.node("third", "echo@1", inputs={"x": "${{ nodes.second.output }}"})
    return b.build()


def test_graph_of_a_registered_workflow(client: actorflow.Client, cli_env: dict[str, str]) -> None:
    client.apply([_version("1"), _version("2")])
    result = _cli(cli_env, "graph", "graph-cli", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["workflow"], data["version"]) == ("graph-cli", "2")  # the highest
    assert [(n["id"], n["layer"]) for n in data["nodes"]] == [
        ("first", 0),
        ("second", 1),
        ("third", 2),
    ]
    assert {(e["source"], e["target"], e["via"]) for e in data["edges"]} == {
        ("first", "second", "needs"),
        ("second", "third", "data"),
    }
    older = _cli(cli_env, "graph", "graph-cli", "--version", "1")
    assert older.returncode == 0, older.stderr
    assert older.stdout.splitlines()[0] == "graph-cli@1: 2 nodes in 2 layers"
    missing = _cli(cli_env, "graph", "no-such-workflow")
    assert missing.returncode == 1
    assert "workflow 'no-such-workflow' not found" in missing.stderr
