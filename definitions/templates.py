"""Template groups: a workflow node ``template: name@version`` expanded into nodes.

Expansion is compile-time and pure: the run starts from a plain workflow whose nodes are
the template's, with ids prefixed by the group node's (``prep.fetch``), and two value
nodes that carry what crosses the group's border — ``prep.inputs`` (the inputs given,
gated by the group node's `needs` and `when`) and ``prep`` (the template's outputs, read
downstream as ``nodes.prep.output``). Everything inside keeps its own rules (retries,
`when`, error branches, forEach); nothing at run time knows templates exist, so replay,
recovery and the history need nothing new.

Inside a template, ``inputs.x`` and ``nodes.fetch`` are the template's own; expansion
rewrites those references in the CEL text (outside string literals) to the prefixed ids.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from actorflow.definitions.errors import DefinitionError, DefinitionIssue, ExpressionError
from actorflow.definitions.expressions import Template
from actorflow.definitions.models import (
    NodeSpec,
    StepTemplate,
    Workflow,
    WorkflowSpec,
)

INPUTS_NODE = "inputs"
"""The id, inside a group, of the value node holding the group's inputs (reserved)."""

_EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_INPUTS = re.compile(r"(?<![.\w])inputs\b")
_NODE_DOT = re.compile(r"(?<![.\w])nodes\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_HIDDEN_INDEX = re.compile(r"(?<![.\w])nodes\s*\[\s*\x00(\d+)\x00\s*\]")

Lookup = Callable[[str], StepTemplate | None]


def template_refs(nodes: list[NodeSpec]) -> set[str]:
    """The template references these nodes make (as written)."""
    return {node.template for node in nodes if node.template is not None}


def as_workflow(template: StepTemplate) -> Workflow:
    """The template as a workflow of its own, for the graph checks its nodes must pass."""
    spec = template.spec
    return Workflow(
        metadata=template.metadata,
        spec=WorkflowSpec(inputs=spec.inputs, nodes=spec.nodes, outputs=spec.outputs),
    )


def check_uses(
    nodes: list[NodeSpec], lookup: Lookup, *, base: str = "spec"
) -> list[DefinitionIssue]:
    """What is wrong with the template nodes among `nodes`: an unknown template, an input
    it does not declare, a required one missing, a cycle of templates (with its path)."""
    issues: list[DefinitionIssue] = []
    for i, node in enumerate(nodes):
        if node.template is None:
            continue
        field = f"{base}.nodes[{i}]"
        template = lookup(node.template)
        if template is None:
            issues.append(
                DefinitionIssue(f"unknown template {node.template!r}", field=f"{field}.template")
            )
            continue
        declared = template.spec.inputs
        for key in node.inputs:
            if key not in declared:
                issues.append(
                    DefinitionIssue(
                        f"template {template.ref} declares no input {key!r}",
                        field=f"{field}.inputs.{key}",
                    )
                )
        for key, spec in declared.items():
            if spec.required and key not in node.inputs:
                issues.append(
                    DefinitionIssue(
                        f"missing required input {key!r} of template {template.ref}",
                        field=f"{field}.inputs",
                    )
                )
        cycle = _cycle_from(template, lookup, [template.ref])
        if cycle:
            issues.append(
                DefinitionIssue(f"template cycle: {' -> '.join(cycle)}", field=f"{field}.template")
            )
    return issues


def _cycle_from(template: StepTemplate, lookup: Lookup, path: list[str]) -> list[str] | None:
    for ref in sorted(template_refs(template.spec.nodes)):
        inner = lookup(ref)
        if inner is None:
            continue
        if inner.ref in path:
            return [*path[path.index(inner.ref) :], inner.ref]
        found = _cycle_from(inner, lookup, [*path, inner.ref])
        if found:
            return found
    return None


def expand(wf: Workflow, lookup: Lookup) -> tuple[Workflow, dict[str, str]]:
    """`wf` with every template node expanded (recursively), and the version each template
    reference resolved to. A workflow without template nodes is returned as it is.

    Raises:
        DefinitionError: a template is unknown or the templates form a cycle.
    """
    if not template_refs(wf.spec.nodes):
        return wf, {}
    versions: dict[str, str] = {}
    nodes = _expand_nodes(wf.spec.nodes, lookup, [], versions)
    spec = wf.spec.model_copy(update={"nodes": nodes})
    return wf.model_copy(update={"spec": spec}), versions


def _expand_nodes(
    nodes: list[NodeSpec], lookup: Lookup, path: list[str], versions: dict[str, str]
) -> list[NodeSpec]:
    out: list[NodeSpec] = []
    for i, node in enumerate(nodes):
        if node.template is None:
            out.append(node)
            continue
        template = lookup(node.template)
        field = f"spec.nodes[{i}].template"
        if template is None:
            raise DefinitionError.single(f"unknown template {node.template!r}", field=field)
        if template.ref in path:
            cycle = " -> ".join([*path[path.index(template.ref) :], template.ref])
            raise DefinitionError.single(f"template cycle: {cycle}", field=field)
        versions[node.template] = template.metadata.version
        inner = _expand_nodes(template.spec.nodes, lookup, [*path, template.ref], versions)
        out.extend(_group(node, template, inner))
    return out


def _group(node: NodeSpec, template: StepTemplate, inner: list[NodeSpec]) -> list[NodeSpec]:
    """The nodes that stand for template node `node`: entry, the template's, exit."""
    group = node.id
    ids = {n.id for n in inner}
    entry = f"{group}.{INPUTS_NODE}"
    given = {
        key: node.inputs.get(key, spec.default)
        for key, spec in template.spec.inputs.items()
        if key in node.inputs or not spec.required
    }
    members: list[NodeSpec] = []
    needed: set[str] = set()
    for member in inner:
        deps = _dependencies(member)
        needed |= deps & ids
        data = member.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        renamed = _rewrite(data, group, ids)
        renamed["id"] = f"{group}.{member.id}"
        renamed["needs"] = [_renamed_need(n, group) for n in data.get("needs", [])]
        if not deps & ids and entry not in _dependencies_of_data(renamed):
            renamed["needs"].insert(0, entry)  # gated by the group's needs and `when`
        members.append(NodeSpec.model_validate(renamed))
    leaves = [f"{group}.{m.id}" for m in inner if m.id not in needed]
    head = NodeSpec.model_validate(
        {
            "id": entry,
            "value": given,
            "needs": node.model_dump(mode="json", by_alias=True)["needs"],
            "when": node.when,
        }
    )
    tail = NodeSpec.model_validate(
        {"id": group, "value": _rewrite(template.spec.outputs, group, ids), "needs": leaves}
    )
    return [head, *members, tail]


def _renamed_need(need: Any, group: str) -> Any:
    if isinstance(need, str):
        return f"{group}.{need}"
    return {**need, "node": f"{group}.{need['node']}"}


def _dependencies(node: NodeSpec) -> set[str]:
    """What a node waits for; a compensation's references are no wait (it runs last)."""
    data = node.model_dump(mode="json", by_alias=True, exclude={"compensate"})
    return set(node.need_ids) | _refs(data)


def _dependencies_of_data(data: dict[str, Any]) -> set[str]:
    needs = {n if isinstance(n, str) else n["node"] for n in data.get("needs", [])}
    return needs | _refs({k: v for k, v in data.items() if k != "needs"})


def _refs(value: Any) -> set[str]:
    try:
        return Template.compile(value).node_refs
    except ExpressionError:
        return set()


def _rewrite(value: Any, group: str, ids: set[str]) -> Any:
    """`value` with the template's references moved into group `group`: every expression
    in every string (map keys are not expressions)."""
    if isinstance(value, str):
        return _EXPR.sub(lambda m: "${{" + _rewrite_cel(m.group(1), group, ids) + "}}", value)
    if isinstance(value, list):
        return [_rewrite(v, group, ids) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite(v, group, ids) for k, v in value.items()}
    return value


def _rewrite_cel(source: str, group: str, ids: set[str]) -> str:
    # String literals are set aside first (their text is not code), and every replacement
    # is set aside as it is made, so no later pass rewrites what an earlier one wrote.
    kept: list[str] = []

    def keep(text: str) -> str:
        kept.append(text)
        return f"\x00{len(kept) - 1}\x00"

    text = _STRING_LITERAL.sub(lambda m: keep(m.group(0)), source)

    def index(m: re.Match[str]) -> str:
        key = kept[int(m.group(1))][1:-1]
        return keep(f'nodes["{group}.{key}"]') if key in ids else m.group(0)

    def dot(m: re.Match[str]) -> str:
        key = m.group(1)
        return keep(f'nodes["{group}.{key}"]') if key in ids else m.group(0)

    text = _HIDDEN_INDEX.sub(index, text)
    text = _NODE_DOT.sub(dot, text)
    text = _INPUTS.sub(lambda m: keep(f'nodes["{group}.{INPUTS_NODE}"].output'), text)
    while "\x00" in text:
        text = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)
    return text


def catalog(
    registered: Iterable[StepTemplate],
    latest: Mapping[str, str],
    batch: Iterable[StepTemplate] = (),
) -> dict[str, StepTemplate]:
    """Templates by every reference that can name them: ``name@version`` and, for each
    name, ``name@latest`` — the `latest` version registered, unless `batch` (being applied
    now, in order) has one of that name, whose last then is the latest."""
    out: dict[str, StepTemplate] = {t.ref: t for t in registered}
    for name, version in latest.items():
        if f"{name}@{version}" in out:
            out[f"{name}@latest"] = out[f"{name}@{version}"]
    for template in batch:
        out[template.ref] = template
        out[f"{template.metadata.name}@latest"] = template
    return out


async def gather(
    nodes: list[NodeSpec], fetch: Callable[[str], Awaitable[StepTemplate | None]]
) -> dict[str, StepTemplate]:
    """Every template `nodes` use, directly or through other templates, by reference as
    written; one that `fetch` does not find is left out (`expand` reports it)."""
    found: dict[str, StepTemplate] = {}
    missing: set[str] = set()
    todo = sorted(template_refs(nodes))
    while todo:
        ref = todo.pop()
        if ref in found or ref in missing:
            continue
        template = await fetch(ref)
        if template is None:
            missing.add(ref)
            continue
        found[ref] = template
        todo.extend(sorted(template_refs(template.spec.nodes) - found.keys()))
    return found
