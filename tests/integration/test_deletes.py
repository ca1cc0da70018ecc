"""Deleting definitions: each kind is refused while something registered still names it
(the refusal says who), goes once nothing does, and a run already started finishes on
what it resolved when it began."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import actorflow

Cli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture

STEPS_DIR = Path(__file__).parent / "steps"
DEFINITIONS = f"""
apiVersion: actorflow/v1
kind: Function
metadata: {{name: del-echo, version: "1"}}
spec: {{handler: "af_test_steps:echo", codeDir: "{STEPS_DIR}", resources: {{cpus: 0.1}},
        nodeLabels: {{af-role: head}}}}
---
apiVersion: actorflow/v1
kind: Template
metadata: {{name: del-pair, version: "1"}}
spec:
  inputs: {{v: {{type: integer}}}}
  nodes:
    - {{id: one, function: del-echo, inputs: {{value: "${{{{ inputs.v }}}}"}}}}
  outputs: {{v: "${{{{ nodes.one.output }}}}"}}
---
apiVersion: actorflow/v1
kind: Workflow
metadata: {{name: del-child, version: "1"}}
spec:
  inputs: {{v: {{type: integer}}}}
  nodes:
    - {{id: pair, template: del-pair@1, inputs: {{v: "${{{{ inputs.v }}}}"}}}}
  outputs: {{v: "${{{{ nodes.pair.output.v }}}}"}}
---
apiVersion: actorflow/v1
kind: Workflow
metadata: {{name: del-parent, version: "1"}}
spec:
  nodes:
    - {{id: child, workflow: del-child@1, inputs: {{v: 7}}}}
  outputs: {{v: "${{{{ nodes.child.output.v }}}}"}}
---
apiVersion: actorflow/v1
kind: Trigger
metadata: {{name: del-hook, version: "1"}}
spec: {{source: {{webhook: {{}}}}, workflow: del-parent}}
---
apiVersion: actorflow/v1
kind: Connection
metadata: {{name: del-db, version: "1"}}
spec: {{url: "sqlite:///{{db}}"}}
---
apiVersion: actorflow/v1
kind: Workflow
metadata: {{name: del-sql, version: "1"}}
spec:
  nodes:
    - {{id: q, sql: {{connection: del-db, query: "select 1 as one"}}}}
"""


def _in_use(client: actorflow.Client, kind: str, ref: str, by: str) -> None:
    with pytest.raises(actorflow.InUseError, match=by):
        client.delete(kind, ref)


def test_each_kind_is_refused_while_named_and_deleted_once_nothing_does(
    client: actorflow.Client, tmp_path: Path
) -> None:
    defs = actorflow.load_text(DEFINITIONS.replace("{db}", str(tmp_path / "d.db")))
    client.apply(defs)
    started = client.run("del-parent")  # resolved now: deleting later does not touch it
    _in_use(client, "Workflow", "del-child@1", "workflow del-parent@1")
    _in_use(client, "Template", "del-pair@1", "workflow del-child@1")
    _in_use(client, "Function", "del-echo@1", "template del-pair@1")
    _in_use(client, "Workflow", "del-parent@1", "trigger del-hook")
    _in_use(client, "Connection", "del-db@1", "workflow del-sql@1")
    assert started.result(timeout=60) == {"v": 7}

    client.delete_trigger("del-hook")
    for kind, ref in [
        ("Workflow", "del-parent@1"),
        ("Workflow", "del-child@1"),
        ("Template", "del-pair@1"),
        ("Function", "del-echo@1"),
        ("Workflow", "del-sql@1"),
        ("Connection", "del-db@1"),
    ]:
        client.delete(kind, ref)
    assert not {w.metadata.name for w in client.workflows()} & {"del-parent", "del-child"}
    assert "del-pair" not in {t.metadata.name for t in client.templates()}
    assert "del-db" not in {c.metadata.name for c in client.connections()}
    assert "del-echo@1" not in {p.ref for p in client.pools()}
    with pytest.raises(actorflow.NotFoundError):
        client.run("del-parent")
    with pytest.raises(actorflow.NotFoundError):
        client.delete("Workflow", "del-parent@1")


def test_the_cli_lists_and_deletes_connections_and_templates(
    client: actorflow.Client, tmp_path: Path, cli: Cli
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret-value")
    conn = actorflow.Connection.model_validate(
        {
            "metadata": {"name": "del-pg", "version": "1"},
            "spec": {
                "url": "postgresql://app@db.example/app",
                "password": {"fromFile": str(secret)},
            },
        }
    )
    client.apply(conn)

    listing = cli("connections", "list")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "del-pg" in line)
    assert "postgresql://app@db.example/app" in row
    assert f"file {secret}" in row
    assert "s3cret" not in listing.stdout
    bad = cli("connections", "delete", "del-pg")  # no version: usage, not a trace
    assert bad.returncode == 2
    assert "NAME@VERSION" in bad.stderr
    assert "Traceback" not in bad.stderr
    gone = cli("connections", "delete", "del-pg@1")
    assert gone.returncode == 0, gone.stderr
    assert "del-pg" not in {c.metadata.name for c in client.connections()}
    missing = cli("templates", "delete", "no-such-template@1")
    assert missing.returncode == 1
    assert "no-such-template" in missing.stderr + missing.stdout
    assert "Traceback" not in missing.stderr
