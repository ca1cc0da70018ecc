"""Graph edits on a workflow's YAML text that keep everything they do not change.

Each edit returns new text in which comments, key order, quoting, blank lines and every
line it did not touch are byte-identical: it replaces spans of the original string (see
`yaml_text`), never dumps the document. The result is validated as the loader would
(model, then `graph.check_workflow`), so an edit that would leave a cycle, a dangling
``needs`` or an expression reading an unknown node is refused with the field path; a text
that does not load is refused with its own issues (file, line), and nothing changes.

Every edit has an exact inverse (`apply_op` returns it): removing a node then applying the
inverse gives the text back byte for byte, because the inverse carries the removed text.

Example::

    text = add_dependency(text, "report", "fetch")
    text = add_node(text, {"id": "notify", "function": "mail@1", "needs": ["report"]})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import JsonValue, TypeAdapter, ValidationError

from actorflow.definitions.errors import DefinitionError, DefinitionIssue
from actorflow.definitions.graph import check_workflow
from actorflow.definitions.graph_ops import (
    AddDependency,
    AddNode,
    GraphOp,
    RemoveDependency,
    RemoveNode,
    UpdateNode,
)
from actorflow.definitions.loader import issues_from_validation
from actorflow.definitions.models import NODE_KINDS, NeedKind, Workflow
from actorflow.definitions.yaml_source import line_of, parse_field
from actorflow.definitions.yaml_text import (
    Splice,
    WorkflowText,
    content_end,
    pairs,
    parse_fragment,
    render_inline,
    render_mapping,
)

__all__ = [
    "AddDependency",
    "AddNode",
    "Edit",
    "GraphOp",
    "RemoveDependency",
    "RemoveNode",
    "UpdateNode",
    "add_dependency",
    "add_node",
    "apply_op",
    "apply_ops",
    "parse_ops",
    "remove_dependency",
    "remove_node",
    "update_node",
]

_OPS: TypeAdapter[list[GraphOp]] = TypeAdapter(list[GraphOp])


@dataclass(frozen=True)
class Edit:
    """The edited text and the ops that undo the edit (in order) on it."""

    text: str
    inverse: list[GraphOp]


def add_node(
    text: str,
    node: Mapping[str, JsonValue],
    *,
    index: int | None = None,
    workflow: str | None = None,
    file: str = "<string>",
) -> str:
    """Add `node` (its YAML fields: ``{"id": "b", "function": "f@1", "needs": ["a"]}``) at
    `index` of ``spec.nodes`` (default: last), written in the block style of the file."""
    return apply_op(text, AddNode(node=dict(node), index=index), workflow=workflow, file=file).text


def remove_node(
    text: str, node_id: str, *, workflow: str | None = None, file: str = "<string>"
) -> str:
    """Remove a node (refused while another node needs or reads it)."""
    return apply_op(text, RemoveNode(id=node_id), workflow=workflow, file=file).text


def update_node(
    text: str,
    node_id: str,
    values: Mapping[str, JsonValue] | None = None,
    unset: Iterable[str] = (),
    *,
    workflow: str | None = None,
    file: str = "<string>",
) -> str:
    """Set fields of a node and drop others; fields that keep their value keep their text."""
    op = UpdateNode(id=node_id, values=dict(values or {}), unset=list(unset))
    return apply_op(text, op, workflow=workflow, file=file).text


def add_dependency(
    text: str,
    node_id: str,
    needs: str,
    *,
    on: NeedKind = "succeeded",
    workflow: str | None = None,
    file: str = "<string>",
) -> str:
    """Make `node_id` wait for `needs` (a new entry at the end of its ``needs``)."""
    op = AddDependency(node=node_id, needs=needs, on=on)
    return apply_op(text, op, workflow=workflow, file=file).text


def remove_dependency(
    text: str, node_id: str, needs: str, *, workflow: str | None = None, file: str = "<string>"
) -> str:
    """Drop every entry of `node_id`'s ``needs`` naming `needs` (the key, when none is left)."""
    op = RemoveDependency(node=node_id, needs=needs)
    return apply_op(text, op, workflow=workflow, file=file).text


def apply_op(
    text: str, op: GraphOp, *, workflow: str | None = None, file: str = "<string>"
) -> Edit:
    """One op on `text`, validated; with the ops that undo it.

    Raises:
        DefinitionError: the text does not load (its issues, with lines), or the edit is
            refused (what it would break, with the field path).
    """
    return _apply(text, [op], workflow, file)


def apply_ops(
    text: str, ops: Sequence[GraphOp], *, workflow: str | None = None, file: str = "<string>"
) -> Edit:
    """Ops in order (e.g. what `graph_diff.diff_graph` returns), validated once at the end:
    a list may pass through states that would be refused alone (a node added before the
    entry that needs it)."""
    return _apply(text, ops, workflow, file)


def parse_ops(raw: str | bytes) -> list[GraphOp]:
    """A JSON list of ops, as a front end sends it.

    Raises:
        DefinitionError: not a list of known ops (one issue per problem).
    """
    try:
        return _OPS.validate_json(raw)
    except ValidationError as exc:
        raise DefinitionError(
            [DefinitionIssue(e["msg"], field=".".join(map(str, e["loc"]))) for e in exc.errors()]
        ) from None


# --- applying ---------------------------------------------------------------------------


def _apply(text: str, ops: Sequence[GraphOp], workflow: str | None, file: str) -> Edit:
    first = WorkflowText.read(text, file, workflow)
    current, nodes = first, first.nodes
    undo: list[GraphOp] = []
    target: int | None = None
    for n, op in enumerate(ops):
        splices, nodes, inverse, target = _step(current, op)
        undo.insert(0, inverse)
        text = current.splice(splices)
        if n < len(ops) - 1:  # the next op needs the new text's positions
            current = WorkflowText.read(text, file, workflow)
    if ops:
        _check(first, current.with_nodes(nodes), target)
    return Edit(text, undo)


def _check(first: WorkflowText, data: dict[str, Any], target: int | None) -> None:
    issues = _issues(data)
    if not issues:
        return
    lines = first.lines_map()
    old = _issues(first.data)
    if old:  # the file itself does not load: say where, as the loader would
        raise DefinitionError(
            [DefinitionIssue(i.message, first.file, _line(i, lines), i.field) for i in old]
        )
    fallback = first.item_lines(target)[0] + 1 if target is not None else None
    raise DefinitionError(
        [
            DefinitionIssue(
                f"edit refused: {i.message}",
                first.file,
                _old_line(first, data, i.field, lines) or fallback,
                i.field,
            )
            for i in issues
        ]
    )


def _line(issue: DefinitionIssue, lines: Mapping[tuple[str | int, ...], int]) -> int | None:
    return line_of(parse_field(issue.field), lines)


def _old_line(
    first: WorkflowText,
    data: dict[str, Any],
    field: str | None,
    lines: Mapping[tuple[str | int, ...], int],
) -> int | None:
    """The line in the original text of what an issue of the edited data names: the same
    node (found by id, its index may have moved), or the same field outside the nodes."""
    path = parse_field(field)
    if path[:2] != ("spec", "nodes") or len(path) < 3 or not isinstance(path[2], int):
        return line_of(path, lines) if path else None
    nodes = data["spec"]["nodes"]
    node = nodes[path[2]] if path[2] < len(nodes) else None
    old_ids = [n.get("id") if isinstance(n, dict) else None for n in first.nodes]
    if not isinstance(node, dict) or node.get("id") not in old_ids:
        return None
    return line_of(("spec", "nodes", old_ids.index(node.get("id")), *path[3:]), lines)


def _issues(data: dict[str, Any]) -> list[DefinitionIssue]:
    try:
        wf = Workflow.model_validate(data)
    except ValidationError as exc:
        return issues_from_validation(exc, data)
    return check_workflow(wf)


def _step(wt: WorkflowText, op: GraphOp) -> tuple[list[Splice], list[Any], GraphOp, int | None]:
    """The splices of one op, the nodes' data after it, its inverse and the old index of
    the node it touches (for the line of a refusal)."""
    nodes = list(wt.nodes)
    if isinstance(op, AddNode):
        k = len(nodes) if op.index is None else op.index
        if not 0 <= k <= len(nodes):
            raise _refuse(wt, f"index {k} is out of range (0 to {len(nodes)})", None)
        if op.source is not None:
            block = op.source if op.source.endswith("\n") else op.source + "\n"
            node = _one_item(wt, block)
        else:
            node = dict(op.node)
            if "id" not in node:
                raise _refuse(wt, "a node needs an id", None, "node.id")
            node = {"id": node.pop("id"), **node}
            block = _item_text(node, wt.dash_column())
        at = wt.line_end(wt.anchor_line(k))
        nodes.insert(k, node)
        return [(at, at, block)], nodes, RemoveNode(id=str(node["id"])), None
    if isinstance(op, RemoveNode):
        k = wt.position(op.id)
        start, end = wt.block_span(k)
        node = nodes.pop(k)
        inverse = AddNode(node=node, index=k, source=wt.text[start:end])
        return [(start, end, "")], nodes, inverse, k
    k = wt.position(op.id if isinstance(op, UpdateNode) else op.node)
    old = nodes[k]
    if not isinstance(old, dict):
        raise _refuse(wt, "a node must be a mapping", k)
    start, end = wt.item_span(k)
    if isinstance(op, UpdateNode) and op.source is not None:
        nodes[k] = _one_item(wt, op.source)
        splices: list[Splice] = [(start, end, op.source)]
    elif isinstance(op, AddDependency | RemoveDependency) and op.via == "data":
        splices = []  # written in the reading node's fields: reported, not applied
    elif isinstance(op, UpdateNode):
        nodes[k], splices = _update(wt, k, old, op)
    elif isinstance(op, AddDependency):
        nodes[k], splices = _add_need(wt, k, old, op)
    else:
        nodes[k], splices = _remove_need(wt, k, old, op)
    new = nodes[k] if isinstance(nodes[k], dict) else {}
    changed = [key for key in {**old, **new} if old.get(key, _MISSING) != new.get(key, _MISSING)]
    undo = UpdateNode(
        id=str(old.get("id")),
        values={key: old[key] for key in changed if key in old},
        unset=[key for key in changed if key not in old],
        source=wt.text[start:end],
    )
    return splices, nodes, undo, k


_MISSING = object()


def _refuse(
    wt: WorkflowText, message: str, k: int | None, field: str | None = None
) -> DefinitionError:
    """`field`: below node `k` when given (``needs`` -> ``spec.nodes[3].needs``)."""
    if k is not None:
        field = f"spec.nodes[{k}]" + (f".{field}" if field else "")
    return DefinitionError([wt.issue(f"edit refused: {message}", k, field)])


def _one_item(wt: WorkflowText, block: str) -> dict[str, Any]:
    try:
        parsed = parse_fragment(block)
    except yaml.YAMLError as exc:
        raise _refuse(wt, f"the node's source is not YAML: {exc}", None) from None
    if not (isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], dict)):
        raise _refuse(wt, "the node's source must be one '- id: ...' list item", None)
    node: dict[str, Any] = parsed[0]
    return node


def _item_text(node: Mapping[str, Any], column: int) -> str:
    pad = " " * column
    lines = render_mapping(dict(node))
    return "".join(f"{pad}{'- ' if i == 0 else '  '}{line}\n" for i, line in enumerate(lines))


# --- node fields ------------------------------------------------------------------------


def _update(
    wt: WorkflowText, k: int, old: dict[str, Any], op: UpdateNode
) -> tuple[dict[str, Any], list[Splice]]:
    if "id" in op.unset or op.values.get("id", old.get("id")) != old.get("id"):
        raise _refuse(
            wt, "a node's id cannot change: remove the node and add it under the new id", k
        )
    new = {key: value for key, value in old.items() if key not in op.unset}
    new.update(op.values)
    return new, _rewrite(wt, k, old, new)


def _rewrite(wt: WorkflowText, k: int, old: dict[str, Any], new: dict[str, Any]) -> list[Splice]:
    """The splices that turn node `k`'s mapping from `old` into `new`: a changed field's
    value is rewritten, a dropped field's lines go, a new field follows the field before
    it in `new` (default: the last); a flow mapping ``{id: a, ...}`` is written anew."""
    item = wt.items[k]
    if not isinstance(item, yaml.MappingNode):
        raise _refuse(wt, "a node must be a mapping", k)
    if item.flow_style:
        return [(item.start_mark.index, item.end_mark.index, render_inline(new))]
    fields = pairs(item)
    pad = " " * item.start_mark.column
    splices: list[Splice] = []
    for j, (name, key, value) in enumerate(fields):
        if name not in new:
            splices.append(_drop_field(wt, fields, j, k))
        elif new[name] != old.get(name):
            splices.append(_replace_value(wt, key, value, name, new[name], pad=pad))
    written = [name for name, _, _ in fields if name in new]
    added: dict[str, dict[str, Any]] = {}
    order = list(new)
    for name, value in new.items():
        if name in written:
            continue
        before = [n for n in order[: order.index(name)] if n in written]
        anchor = before[-1] if before else written[-1]
        added.setdefault(anchor, {})[name] = value
    for anchor, group in added.items():
        _, key, node = next(f for f in fields if f[0] == anchor)
        at = wt.line_end(wt.line_of(_pair_end(wt, key, node) - 1))
        splices.append((at, at, "".join(f"{pad}{line}\n" for line in render_mapping(group))))
    return splices


def _pair_end(wt: WorkflowText, key: yaml.Node, value: yaml.Node) -> int:
    if isinstance(value, yaml.ScalarNode) and value.start_mark.index == value.end_mark.index:
        return wt.text.index(":", key.end_mark.index) + 1  # `key:` and nothing
    return content_end(value, wt.text)


def _drop_field(
    wt: WorkflowText, fields: list[tuple[str, yaml.Node, yaml.Node]], j: int, k: int
) -> Splice:
    _, key, value = fields[j]
    if j == 0:  # on the dash's line: the next field moves up to it
        if len(fields) == 1:
            raise _refuse(wt, "a node cannot be left empty", k)
        return key.start_mark.index, fields[1][1].start_mark.index, ""
    first, last = wt.line_of(key.start_mark.index), wt.line_of(_pair_end(wt, key, value) - 1)
    return wt.line_start(first), wt.line_end(last), ""


def _replace_value(
    wt: WorkflowText, key: yaml.Node, value: yaml.Node, name: str, new: Any, *, pad: str
) -> Splice:
    block_scalar = isinstance(value, yaml.ScalarNode) and value.style in ("|", ">")
    inline = not block_scalar and (not isinstance(value, yaml.CollectionNode) or value.flow_style)
    empty = isinstance(value, yaml.ScalarNode) and value.start_mark.index == value.end_mark.index
    lines = render_mapping({name: new})
    if inline and not empty and len(lines) == 1:
        return value.start_mark.index, value.end_mark.index, render_inline(new)
    body = "\n".join([lines[0], *(pad + line for line in lines[1:])])
    return key.start_mark.index, _pair_end(wt, key, value), body


# --- needs ------------------------------------------------------------------------------


def _need_id(entry: Any) -> Any:
    return entry.get("node") if isinstance(entry, dict) else entry


def _add_need(
    wt: WorkflowText, k: int, old: dict[str, Any], op: AddDependency
) -> tuple[dict[str, Any], list[Splice]]:
    needs = old.get("needs")
    entries = needs if isinstance(needs, list) else []
    if any(_need_id(e) == op.needs for e in entries):
        raise _refuse(wt, f"node {op.node!r} already needs {op.needs!r}", k, "needs")
    entry: Any = op.needs if op.on == "succeeded" else {"node": op.needs, "on": op.on}
    if "needs" in old:
        new = {**old, "needs": [*entries, entry]}
    else:  # the new field goes right after the node's kind (`function: ...`)
        kind: list[str] = [key for key in old if key in NODE_KINDS] or ["id"]
        at = list(old).index(kind[0]) + 1
        items = list(old.items())
        new = dict([*items[:at], ("needs", [entry]), *items[at:]])
    seq = _needs_seq(wt, k)
    if seq is None or not isinstance(needs, list):
        return new, _rewrite(wt, k, old, new)
    text = render_inline(entry)
    if seq.flow_style:
        if seq.value:
            end = seq.value[-1].end_mark.index
            return new, [(end, end, f", {text}")]
        return new, [(seq.start_mark.index + 1, seq.start_mark.index + 1, text)]
    last = seq.value[-1]
    at = wt.line_end(wt.line_of(content_end(last, wt.text) - 1))
    return new, [(at, at, f"{' ' * _dash_column(wt, seq)}- {text}\n")]


def _remove_need(
    wt: WorkflowText, k: int, old: dict[str, Any], op: RemoveDependency
) -> tuple[dict[str, Any], list[Splice]]:
    needs = old.get("needs")
    entries = needs if isinstance(needs, list) else []
    hits = [i for i, e in enumerate(entries) if _need_id(e) == op.needs]
    if not hits:
        raise _refuse(wt, f"node {op.node!r} does not need {op.needs!r}", k, "needs")
    left = [e for i, e in enumerate(entries) if i not in hits]
    seq = _needs_seq(wt, k)
    if not left or seq is None:
        new = {key: value for key, value in old.items() if key != "needs"}
        if left:
            new = {**old, "needs": left}
        return new, _rewrite(wt, k, old, new)
    new = {**old, "needs": left}
    items = seq.value
    if seq.flow_style:
        if len(hits) > 1:
            return new, [(seq.start_mark.index, seq.end_mark.index, render_inline(left))]
        i = hits[0]
        if i > 0:
            return new, [(items[i - 1].end_mark.index, items[i].end_mark.index, "")]
        return new, [(items[0].start_mark.index, items[1].start_mark.index, "")]
    splices: list[Splice] = []
    for i in hits:
        dash = wt.text.rfind("-", 0, items[i].start_mark.index)
        first, last = wt.line_of(dash), wt.line_of(content_end(items[i], wt.text) - 1)
        splices.append((wt.line_start(first), wt.line_end(last), ""))
    return new, splices


def _needs_seq(wt: WorkflowText, k: int) -> yaml.SequenceNode | None:
    """Node `k`'s written ``needs`` list, where it can be edited in place."""
    item = wt.items[k]
    if not isinstance(item, yaml.MappingNode) or item.flow_style:
        return None
    for name, _, value in pairs(item):
        if name == "needs" and isinstance(value, yaml.SequenceNode):
            return value
    return None


def _dash_column(wt: WorkflowText, seq: yaml.SequenceNode) -> int:
    dash = wt.text.rfind("-", 0, seq.value[0].start_mark.index)
    return dash - wt.line_start(wt.line_of(dash))
