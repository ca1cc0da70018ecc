"""The triage example, as a user would run it from its folder: both branches and the
error branch."""

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
