"""`actorflow graph` (draw a workflow) and `actorflow edit FILE …` (graph edits on its text).

Registered on the main app by `actorflow.cli` (`register`); errors propagate to its
one-line reporter, usage errors print usage and exit 2. Only `graph NAME` of a registered
workflow connects to the engine; everything else works on files.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from actorflow.definitions.edit import (
    AddDependency,
    AddNode,
    GraphOp,
    RemoveDependency,
    RemoveNode,
    UpdateNode,
    apply_op,
)
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.layout import Layout, layout
from actorflow.definitions.loader import load_path, load_text
from actorflow.definitions.models import NeedKind, Workflow
from actorflow.definitions.yaml_text import parse_fragment

__all__ = ["edit_app", "graph", "register"]

edit_app = typer.Typer(
    help="Edit a workflow's graph in its YAML file; comments and layout are kept.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add `graph` and `edit` to the main app."""
    app.command()(graph)
    app.add_typer(edit_app, name="edit")


_WORKFLOW_NAME = re.compile(r"[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?")


class Format(StrEnum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"
    json = "json"


WorkflowOption = Annotated[
    str | None,
    typer.Option("--workflow", "-w", help="Which workflow of a file (by name) holds several."),
]


# --- graph ------------------------------------------------------------------------------
def graph(
    target: Annotated[
        str, typer.Argument(help="A YAML file, or the name of a registered workflow.")
    ],
    fmt: Annotated[Format, typer.Option("--format", "-F", help="How to draw it.")] = Format.text,
    workflow: WorkflowOption = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="A registered workflow's version (default: highest)."),
    ] = None,
) -> None:
    """Draw a workflow's graph in layers: in the terminal, or as Mermaid, DOT or JSON
    (with every node's coordinates)."""
    path = Path(target)
    if path.exists() or not _WORKFLOW_NAME.fullmatch(target):  # no name has '/' or '.'
        wf = _from_file(path, workflow)
    else:
        wf = _registered(target, version)
    typer.echo(render(wf, fmt), nl=False)


def render(wf: Workflow, fmt: Format) -> str:
    """`wf` drawn in `fmt` (ends with a newline)."""
    placed = layout(wf)
    if fmt is Format.json:
        return placed.model_dump_json(indent=2) + "\n"
    if fmt is Format.mermaid:
        return _mermaid(placed)
    if fmt is Format.dot:
        return _dot(placed)
    return _text(placed)


def _from_file(path: Path, name: str | None) -> Workflow:
    if not path.exists():
        raise typer.BadParameter(f"no such file or workflow name: {path}")
    workflows = [d for d in load_path(path) if isinstance(d, Workflow)]
    chosen = [w for w in workflows if name is None or w.metadata.name == name]
    if len(chosen) == 1:
        return chosen[0]
    names = ", ".join(w.ref for w in workflows) or "none"
    if not chosen:
        raise typer.BadParameter(f"no workflow {name!r} in {path} (it has: {names})")
    raise typer.BadParameter(f"{path} holds several workflows ({names}): name one (--workflow)")


def _registered(name: str, version: str | None) -> Workflow:
    from actorflow._sync import Client
    from actorflow.cluster.settings import Settings
    from actorflow.definitions.errors import NotFoundError

    with Client(Settings(), log_to_driver=False) as client:
        found = [w for w in client.workflows() if w.metadata.name == name]
    if version is not None:
        found = [w for w in found if w.metadata.version == version]
    if not found:
        raise NotFoundError("workflow", name if version is None else f"{name}@{version}")
    return max(found, key=lambda w: _natural(w.metadata.version))


def _natural(version: str) -> list[tuple[int, int | str]]:
    """'1.10' after '1.9': digit runs compare as numbers."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|\D+", version)]


def _label(via: str, on: str) -> str:
    return "data" if via == "data" else ("" if on == "succeeded" else on)


def _text(placed: Layout) -> str:
    incoming: dict[str, list[str]] = {}
    for e in placed.edges:
        label = _label(e.via, e.on)
        incoming.setdefault(e.target, []).append(e.source + (f" ({label})" if label else ""))
    by_layer = sorted(placed.nodes, key=lambda n: (n.layer, n.order))
    width = max((len(n.id) for n in placed.nodes), default=0)
    what = max((len(f"{n.kind} {n.ref or ''}".strip()) for n in placed.nodes), default=0)
    count = len(placed.nodes)
    lines = [f"{placed.workflow}@{placed.version}: {count} nodes in {placed.layers} layers"]
    for node in by_layer:
        kind = f"{node.kind} {node.ref or ''}".strip()
        deps = ", ".join(incoming.get(node.id, []))
        row = f"{node.layer:>3}  {node.id:<{width}}  {kind:<{what}}"
        lines.append((row + (f"  <- {deps}" if deps else "")).rstrip())
    return "\n".join(lines) + "\n"


def _mermaid(placed: Layout) -> str:
    def mid(node_id: str) -> str:  # `end` closes a Mermaid block
        return f"{node_id}_" if node_id.lower() == "end" else node_id

    lines = ["flowchart TD"]
    for n in placed.nodes:
        what = f"{n.kind} {n.ref or ''}".strip()
        lines.append(f'  {mid(n.id)}["{n.id}<br/>{what}"]')
    for e in placed.edges:
        label = _label(e.via, e.on)
        arrow = "-.->" if e.via == "data" else "-->"
        text = f"|{label}|" if label and e.via != "data" else ""
        lines.append(f"  {mid(e.source)} {arrow}{text} {mid(e.target)}")
    return "\n".join(lines) + "\n"


def _dot(placed: Layout) -> str:
    lines = [f"digraph {json.dumps(placed.workflow)} {{", "  rankdir=TB;", "  node [shape=box];"]
    for n in placed.nodes:
        label = json.dumps(f"{n.id}\n{n.kind} {n.ref or ''}".strip())
        lines.append(f'  {json.dumps(n.id)} [label={label}, pos="{n.x:g},{-n.y:g}!"];')
    for e in placed.edges:
        attrs = []
        if e.via == "data":
            attrs.append("style=dashed")
        elif e.on != "succeeded":
            attrs.append(f"label={json.dumps(e.on)}")
        extra = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {json.dumps(e.source)} -> {json.dumps(e.target)}{extra};")
    for depth in range(placed.layers):
        same = " ".join(json.dumps(n.id) for n in placed.nodes if n.layer == depth)
        lines.append(f"  {{rank=same; {same}}}")
    return "\n".join([*lines, "}"]) + "\n"


# --- edit -------------------------------------------------------------------------------
@dataclass
class _Target:
    file: Path


OutOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write here instead of in place.")
]
NodeArg = Annotated[str, typer.Argument(help="The node's id.")]


@edit_app.callback()
def _edit(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The workflow's YAML file.", exists=True)],
) -> None:
    ctx.obj = _Target(file)


@edit_app.command("add-node")
def add_node_cmd(
    ctx: typer.Context,
    node_id: NodeArg,
    *,
    function: Annotated[
        str | None, typer.Option("--function", "-f", help="NAME@VERSION it calls.")
    ] = None,
    needs: Annotated[
        list[str] | None, typer.Option("--needs", "-n", help="A node it waits for (repeat).")
    ] = None,
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="KEY=VALUE (YAML value; repeat).")
    ] = None,
    fields: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Any other field, FIELD=VALUE (YAML; repeat)."),
    ] = None,
    at: Annotated[
        int | None, typer.Option("--at", help="Its index in spec.nodes (default: last).")
    ] = None,
    output: OutOption = None,
    workflow: WorkflowOption = None,
) -> None:
    """Add a node: `add-node report -f render@1 -n fetch -i data='${{ nodes.fetch.output }}'`."""
    node: dict[str, Any] = {"id": node_id}
    if function is not None:
        node["function"] = function
    if needs:
        node["needs"] = list(needs)
    if inputs:
        node["inputs"] = _pairs(inputs, "--input")
    node.update(_pairs(fields or [], "--set"))
    _run(ctx, AddNode(node=node, index=at), output, workflow, f"added node {node_id}")


@edit_app.command("remove-node")
def remove_node_cmd(
    ctx: typer.Context,
    node_id: NodeArg,
    output: OutOption = None,
    workflow: WorkflowOption = None,
) -> None:
    """Remove a node (refused while another node needs or reads it)."""
    _run(ctx, RemoveNode(id=node_id), output, workflow, f"removed node {node_id}")


@edit_app.command("update-node")
def update_node_cmd(
    ctx: typer.Context,
    node_id: NodeArg,
    *,
    fields: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="FIELD=VALUE (YAML; repeat).")
    ] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", "-u", help="A field to drop (repeat).")
    ] = None,
    output: OutOption = None,
    workflow: WorkflowOption = None,
) -> None:
    """Set or drop fields of a node: `update-node fetch -s retry='{maxAttempts: 3}'`."""
    if not fields and not unset:
        raise typer.BadParameter("give --set FIELD=VALUE or --unset FIELD")
    op = UpdateNode(id=node_id, values=_pairs(fields or [], "--set"), unset=list(unset or []))
    _run(ctx, op, output, workflow, f"updated node {node_id}")


NeedsArg = Annotated[str, typer.Argument(help="The node it waits for.")]


class On(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    finished = "finished"


@edit_app.command("add-dep")
def add_dep_cmd(
    ctx: typer.Context,
    node_id: NodeArg,
    needs: NeedsArg,
    *,
    on: Annotated[On, typer.Option("--on", help="What it waits for.")] = On.succeeded,
    output: OutOption = None,
    workflow: WorkflowOption = None,
) -> None:
    """Make NODE wait for NEEDS (refused if that makes a cycle)."""
    kind: NeedKind = on.value
    op = AddDependency(node=node_id, needs=needs, on=kind)
    _run(ctx, op, output, workflow, f"{node_id} now needs {needs}")


@edit_app.command("remove-dep")
def remove_dep_cmd(
    ctx: typer.Context,
    node_id: NodeArg,
    needs: NeedsArg,
    output: OutOption = None,
    workflow: WorkflowOption = None,
) -> None:
    """NODE no longer waits for NEEDS."""
    op = RemoveDependency(node=node_id, needs=needs)
    _run(ctx, op, output, workflow, f"{node_id} no longer needs {needs}")


def _pairs(items: list[str], option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        try:
            out[key] = parse_fragment(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise typer.BadParameter(
                f"{item!r}: not a YAML value ({exc})", param_hint=option
            ) from None
    return out


def _run(
    ctx: typer.Context, op: GraphOp, output: Path | None, workflow: str | None, done: str
) -> None:
    """Load the file (nothing changes if it does not), edit, check the result, write."""
    target: _Target = ctx.obj
    text = _read(target.file)
    name = str(target.file)
    load_text(text, file=name)  # the whole file must load, not only the workflow
    edited = apply_op(text, op, workflow=workflow, file=name).text
    with _checked(name):
        load_text(edited, file=name)
    (output or target.file).write_text(edited, encoding="utf-8")
    where = f" (written to {output})" if output else ""
    typer.echo(f"{done} in {target.file}{where}", err=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError.single(f"cannot read: {exc}", file=str(path)) from None


@contextlib.contextmanager
def _checked(file: str) -> Iterator[None]:
    """The edited text must load like the original did; if not, it is our bug: say so and
    write nothing."""
    try:
        yield
    except DefinitionError as exc:
        raise DefinitionError.single(
            f"internal error: the edited text would not load ({exc}); nothing was written",
            file=file,
        ) from exc
