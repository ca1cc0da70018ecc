"""The triage example, as a user would run it from its folder: both branches and the
error branch; triage-many runs it as a sub-workflow per module."""

from __future__ import annotations

from pathlib import Path

import pytest

import actorflow
from actorflow import NodeStatus

TIMEOUT = 120
TRIAGE = Path(__file__).parents[2] / "examples" / "triage" / "workflow.yaml"


@pytest.fixture(scope="module")
def triage(client: actorflow.Client) -> None:
    client.apply(TRIAGE)


@pytest.mark.usefixtures("triage")
@pytest.mark.parametrize(
    ("module", "taken"),
    [("json", "summary"), ("colorsys", "note"), ("no_such_module_here", "explain")],
)
def test_triage_takes_the_branch_its_module_calls_for(
    client: actorflow.Client, module: str, taken: str
) -> None:
    run = client.run("triage", {"module": module})
    result = run.result(timeout=TIMEOUT)
    statuses = {n.node: n.status for n in run.nodes()}
    assert statuses[taken] is NodeStatus.SUCCEEDED
    others = {"summary", "note", "explain"} - {taken}
    assert all(statuses[n] is NodeStatus.SKIPPED for n in others)
    if taken == "summary":
        assert result["long"].startswith("json: a long read")
        assert result["short"] is None
    elif taken == "note":
        assert result["short"].startswith("colorsys: short (")
        assert result["long"] is None
    else:
        assert statuses["measure"] is NodeStatus.FAILED
        assert result["problem"].startswith("could not measure: [NO_SUCH_MODULE]")


@pytest.mark.usefixtures("triage")
def test_triage_many_runs_one_child_per_module_and_reports_the_problems(
    client: actorflow.Client,
) -> None:
    run = client.run("triage-many", {"modules": ["colorsys", "no_such_module_here"]})
    result = run.result(timeout=TIMEOUT)
    assert result["report"]["triaged"] == 2
    (problem,) = result["report"]["problems"]
    assert problem.startswith("could not measure: [NO_SUCH_MODULE]")
    assert result["results"][0]["short"].startswith("colorsys: short (")
    children = [r for r in client.runs() if r.parent_run_id == run.run_id]
    assert sorted(r.workflow for r in children) == ["triage", "triage"]
    assert all(r.status is actorflow.RunStatus.SUCCEEDED for r in children)
