"""Argo corpus files, converted, run end to end on the real Ray and nats-server: each ends
as Argo's would, with the outputs Argo would give (read through outputs added to the top
workflow for the test: Argo shows them per node, the native run per workflow)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

import actorflow
from actorflow import NodeStatus, RunStatus
from actorflow.definitions.convert import convert
from actorflow.definitions.loader import load_text
from actorflow.definitions.yaml_source import compose

Cli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "argo"  # ../shared
TIMEOUT = 120


def _apply(
    client: actorflow.Client,
    name: str,
    expose: dict[str, str],
    replace: tuple[str, str] | None = None,
) -> str:
    """Convert a corpus file (after one text replacement), add `expose` as outputs of its
    top workflow, apply everything; the top workflow's name."""
    text = (CORPUS / name).read_text()
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    docs, issues = compose(text, name)
    assert not issues
    native = convert(docs[0], "argo")
    top = native[0].data
    top["spec"].setdefault("outputs", {}).update(
        {key: "${{ " + cel + " }}" for key, cel in expose.items()}
    )
    models = load_text(yaml.safe_dump_all([d.data for d in native]), file=name)
    client.apply(models)
    return str(top["metadata"]["name"])


def _run(client: actorflow.Client, name: str, inputs: dict[str, Any] | None = None) -> Any:
    run = client.run(name, inputs or {}, version="1")
    record = run.wait(timeout=TIMEOUT)
    return run, record


def _statuses(run: actorflow.Run) -> dict[str, NodeStatus]:
    return {n.node: n.status for n in run.nodes()}


def test_steps_run_in_stages_with_their_arguments(client: actorflow.Client) -> None:
    name = _apply(
        client,
        "steps.yaml",
        {k: f"nodes.{k}.output.result" for k in ("hello1", "hello2a", "hello2b")},
    )
    run, record = _run(client, name)
    assert record.status is RunStatus.SUCCEEDED, record
    assert record.outputs == {"hello1": "hello1", "hello2a": "hello2a", "hello2b": "hello2b"}
    nodes = {n.node: n for n in run.nodes()}
    assert nodes["hello1"].finished_at <= nodes["hello2a"].started_at  # stage after stage


def test_a_dag_diamond_runs_each_task_once_after_its_dependencies(
    client: actorflow.Client,
) -> None:
    name = _apply(client, "dag-diamond.yaml", {k: f"nodes.{k}.output.result" for k in "ABCD"})
    run, record = _run(client, name)
    assert record.status is RunStatus.SUCCEEDED, record
    assert record.outputs == {"A": "A", "B": "B", "C": "C", "D": "D"}
    nodes = {n.node: n for n in run.nodes()}
    assert nodes["D"].started_at >= max(nodes["B"].finished_at, nodes["C"].finished_at)


def test_coinflip_takes_the_branch_its_when_says(client: actorflow.Client) -> None:
    name = _apply(
        client,
        "coinflip.yaml",
        {"flip": "nodes.flip_coin.output.result", "heads": "nodes.heads.output.result"},
        replace=("random.randint(0,1) == 0", "True"),
    )
    run, record = _run(client, name)
    assert record.status is RunStatus.SUCCEEDED, record
    assert record.outputs == {"flip": "heads", "heads": "it was heads"}
    assert _statuses(run)["tails"] is NodeStatus.SKIPPED


def test_with_items_fans_out_and_gathers_the_results(client: actorflow.Client) -> None:
    name = _apply(client, "loops.yaml", {"results": "nodes.print_message_loop.output"})
    _, record = _run(client, name)
    assert record.status is RunStatus.SUCCEEDED, record
    assert [r["result"] for r in record.outputs["results"]] == ["hello world", "goodbye world"]


def test_with_param_loops_over_a_scripts_json_result(client: actorflow.Client) -> None:
    name = _apply(
        client,
        "loops-param-result.yaml",
        {"slept": "nodes.sleep.output.map(o, o.result)"},
        replace=("range(20, 31)", "range(0, 3)"),
    )
    _, record = _run(client, name)
    assert record.status is RunStatus.SUCCEEDED, record
    assert record.outputs["slept"] == [f"sleeping for {i} seconds\ndone" for i in range(3)]


def test_an_output_parameter_file_and_a_passed_artifact_reach_the_next_step(
    client: actorflow.Client,
) -> None:
    param = _apply(
        client, "output-parameter.yaml", {"got": "nodes.consume_parameter.output.result"}
    )
    art = _apply(client, "artifact-passing.yaml", {"got": "nodes.consume_artifact.output.result"})
    script = _apply(client, "scripts-python.yaml", {"got": "nodes.print.output.result"})
    for name, check in (
        (param, lambda got: got == "hello world"),
        (art, lambda got: got == "hello world"),
        (script, lambda got: got.startswith("result was: ") and 1 <= int(got[12:]) <= 100),
    ):
        _, record = _run(client, name)
        assert record.status is RunStatus.SUCCEEDED, (name, record)
        assert check(record.outputs["got"]), (name, record.outputs)


def test_an_exit_handler_runs_after_a_failure_and_the_workflow_still_fails(
    client: actorflow.Client,
) -> None:
    name = _apply(client, "exit-handlers.yaml", {})
    run, record = _run(client, name)
    assert record.status is RunStatus.INTERRUPTED, record
    nodes = {n.node: n for n in run.nodes()}
    assert nodes["main"].status is NodeStatus.FAILED
    assert nodes["main"].error is not None
    assert nodes["main"].error.code == "EXIT_1"
    assert nodes["on_exit"].status is NodeStatus.SUCCEEDED
    assert record.node == "argo_failed"
    child = client.get_run(str(nodes["on_exit"].child_run_id))
    handler = _statuses(child)
    assert handler["cry"] is NodeStatus.SUCCEEDED
    assert handler["celebrate"] is NodeStatus.SKIPPED
    notify = "".join(line.text for line in child.logs("notify"))
    assert "Failed" in notify


def test_enhanced_depends_takes_the_error_branch(client: actorflow.Client) -> None:
    name = _apply(client, "dag-enhanced-depends.yaml", {})
    run, record = _run(client, name)
    assert record.status is RunStatus.SUCCEEDED, record
    statuses = _statuses(run)
    assert statuses["C"] is NodeStatus.FAILED
    assert statuses["should_not_execute"] is NodeStatus.SKIPPED
    for ran in ("should_execute_1", "should_execute_2", "should_execute_3"):
        assert statuses[ran] is NodeStatus.SUCCEEDED, ran


def test_retry_strategy_retries_until_the_step_succeeds(client: actorflow.Client) -> None:
    name = _apply(
        client,
        "retry-with-steps.yaml",
        {"hello1": "nodes.hello1.output.result"},
        replace=(
            "exit_code = random.choice([0, 1, 1])",
            "exit_code = 0 if {{retries}} >= 2 else 1",
        ),
    )
    run, record = _run(client, name)
    assert record.status is RunStatus.SUCCEEDED, record
    assert record.outputs["hello1"] == "retries: 2"  # third attempt: two retries before it
    nodes = {n.node: n for n in run.nodes()}
    assert nodes["hello1"].attempt == 3


def test_the_cli_applies_and_runs_an_argo_file_as_it_stands(
    client: actorflow.Client, cli: Cli, tmp_path: Path
) -> None:
    """`apply -f` of an untouched corpus file (detected, converted on the way), then
    `run --wait`; `convert -o` writes the same definitions as native YAML."""
    source = CORPUS / "hello-world.yaml"
    applied = cli("apply", "-f", str(source))
    assert applied.returncode == 0, applied.stderr
    assert "hello-world" in applied.stdout
    ran = cli("run", "hello-world", "--wait", "--timeout", "120")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    outputs = json.loads("\n".join(lines[lines.index("{") :]))  # after any progress table
    assert outputs == {"result": "hello world", "parameters": {}}  # its one step's
    (record,) = [r for r in client.runs() if r.workflow == "hello-world"]
    assert record.status is RunStatus.SUCCEEDED
    (node,) = client.get_run(record.run_id).nodes()
    assert node.status is NodeStatus.SUCCEEDED
    out = tmp_path / "hello.native.yaml"
    converted = cli("convert", str(source), "--from", "argo", "-o", str(out))
    assert converted.returncode == 0, converted.stderr
    (workflow,) = load_text(out.read_text(), file=str(out))
    assert workflow == load_text(source.read_text(), file=str(source))[0]
    wrong = cli("convert", str(source), "--from", "fission")
    assert wrong.returncode == 1
    assert str(source) in wrong.stderr
    assert "Traceback" not in wrong.stderr
