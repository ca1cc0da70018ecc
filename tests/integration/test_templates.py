"""Templates and value nodes end to end on the real Ray and nats-server: applied, expanded
when a run starts (versions recorded), shown grouped, and refused at apply when wrong."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import nats
import pytest

import actorflow
from actorflow import DefinitionError, NodeStatus, StepTemplate, WorkflowBuilder
from actorflow.actors.run.history import replay
from actorflow.definitions import events as ev

TIMEOUT = 120


async def _first_event(url: str, run_id: str) -> ev.RunStarted:
    nc = await nats.connect(url)
    try:
        first = (await replay(nc.jetstream(), run_id))[0].event
    finally:
        await nc.close()
    assert isinstance(first, ev.RunStarted)
    return first


def _clean() -> StepTemplate:
    b = WorkflowBuilder("clean", version="1")
    text = b.input("text", type="string")
    suffix = b.input("suffix", type="string", default="!")
    shout = b.node("shout", "echo@1", inputs={"value": text})
    b.node("length", "length@1", inputs={"text": shout.output})
    b.output("shouted", "${{ nodes.shout.output + inputs.suffix }}")
    b.output("length", "${{ nodes.length.output }}")
    del suffix
    return b.build_template()


def test_a_template_runs_as_prefixed_nodes_and_its_outputs_are_the_groups(
    client: actorflow.Client,
) -> None:
    template = _clean()
    b = WorkflowBuilder("uses-clean", version="1")
    first = b.node("first", "echo@1", inputs={"value": "hello"})
    group = b.template("prep", template, inputs={"text": first.output})
    again = b.template("again", "clean@1", inputs={"text": "x", "suffix": "?"}, needs=[group])
    summary = b.value("summary", {"a": group.output, "b": again.output})
    b.output("summary", summary.output)
    wf = b.build()
    client.apply([*b.templates, wf])
    run = client.run(wf.metadata.name, version="1")
    assert run.result(timeout=TIMEOUT) == {
        "summary": {"a": {"shouted": "hello!", "length": 5}, "b": {"shouted": "x?", "length": 1}}
    }
    statuses = {n.node: n.status for n in run.nodes()}
    assert set(statuses) == {
        "first",
        *(f"{g}.{n}" for g in ("prep", "again") for n in ("inputs", "shout", "length")),
        "prep",
        "again",
        "summary",
    }
    assert set(statuses.values()) == {NodeStatus.SUCCEEDED}
    started = asyncio.run(_first_event(client.nats_url, run.run_id))
    assert started.templates == {"clean@1": "1"}


def test_runs_show_groups_a_templates_nodes(
    client: actorflow.Client, cli_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "defs.yaml").write_text(
        textwrap.dedent(
            """
            apiVersion: actorflow/v1
            kind: Template
            metadata: {name: pair, version: "2"}
            spec:
              inputs: {x: {}}
              nodes:
                - {id: left, function: echo@1, inputs: {value: "${{ inputs.x }}"}}
                - {id: right, function: echo@1, needs: [left],
                   when: "${{ nodes.left.output == 'never' }}"}
              outputs: {left: "${{ nodes.left.output }}"}
            ---
            apiVersion: actorflow/v1
            kind: Workflow
            metadata: {name: shows-groups}
            spec:
              nodes:
                - {id: grp, template: pair, inputs: {x: 7}}
              outputs: {out: "${{ nodes.grp.output }}"}
            """
        )
    )
    cli = [sys.executable, "-m", "actorflow.cli"]
    subprocess.run(
        [*cli, "apply", "--file", str(tmp_path / "defs.yaml")],
        env=cli_env,
        check=True,
        timeout=120,
    )
    run = client.run("shows-groups")
    assert run.result(timeout=TIMEOUT) == {"out": {"left": 7}}
    shown = subprocess.run(
        [*cli, "runs", "show", run.run_id],
        env={**cli_env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    nodes_part = shown.split("executions")[0]
    rows = [line for line in nodes_part.splitlines() if "SUCCEEDED" in line or "SKIPPED" in line]
    names = [r.split("│")[1].rstrip() if "│" in r else r for r in rows]
    assert any("grp (template)" in n for n in names)
    assert any(n.startswith(" ") and "  left" in n for n in names)
    right = next(r for r in rows if " right " in r)
    assert "SKIPPED" in right
    assert "when was false" in right
    assert not any("inputs" in r for r in rows)
    assert "grp.inputs" not in shown  # nor in the executions: value nodes never execute


def test_bad_template_uses_are_refused_at_apply_and_change_nothing(
    client: actorflow.Client, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """
            apiVersion: actorflow/v1
            kind: Workflow
            metadata: {name: bad-templates}
            spec:
              nodes:
                - {id: a, template: no-such-template@1}
                - id: b
                  template: clean@1
                  inputs: {txt: 1}
            """
        )
    )
    client.apply(_clean())
    before = {w.ref for w in client.workflows()}
    with pytest.raises(DefinitionError) as caught:
        client.apply(str(path))
    found = {(i.line, i.field) for i in caught.value.issues}
    assert (7, "spec.nodes[0].template") in found
    assert (10, "spec.nodes[1].inputs.txt") in found
    assert (10, "spec.nodes[1].inputs") in found  # `text` is required
    assert {w.ref for w in client.workflows()} == before

    # The same through models (no file): the controller refuses the batch as a whole.
    a = StepTemplate.model_validate(
        {"metadata": {"name": "loop-a"}, "spec": {"nodes": [{"id": "x", "template": "loop-b"}]}}
    )
    b = StepTemplate.model_validate(
        {"metadata": {"name": "loop-b"}, "spec": {"nodes": [{"id": "y", "template": "loop-a"}]}}
    )
    with pytest.raises(DefinitionError, match="template cycle: loop-a@1 -> loop-b@1 -> loop-a@1"):
        client.apply([a, b])
    assert not [t for t in client.templates() if t.metadata.name.startswith("loop-")]
