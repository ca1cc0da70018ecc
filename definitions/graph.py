"""Graph checks for workflows: what pydantic cannot see because it spans several nodes.

A workflow is valid only as a whole: a node may name another in `needs` or read its output
in an expression, and those references must resolve and form a DAG. The checks here
report *every* problem at once, each with a field path in the YAML spelling
(``spec.nodes[3].needs[0]``) and no line; the loader maps fields to lines.

Edges in the graph point from a node to the nodes that need it (execution order), so a
cycle reads the way it would run: ``cycle: a -> b -> a``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator

import networkx as nx

from actorflow.definitions.errors import DefinitionError, DefinitionIssue, ExpressionError
from actorflow.definitions.expressions import Template
from actorflow.definitions.models import (
    CompensationSpec,
    NodeSpec,
    StepTemplate,
    Workflow,
    split_ref,
)
from actorflow.definitions.templates import INPUTS_NODE, as_workflow

_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_LOOP_VAR = re.compile(r"(?<![.\w])(item|index)\b")
_SINGLE_EXPR = re.compile(r"\s*\$\{\{.*\}\}\s*", re.DOTALL)
_NODES_WORD = re.compile(r"(?<![.\w])nodes\b")


def check_workflow(
    wf: Workflow,
    *,
    known_functions: Collection[str] | None = None,
    known_workflows: Collection[str] | None = None,
    expanded: bool = False,
    known_connections: Collection[str] | None = None,
) -> list[DefinitionIssue]:
    """Every graph-level problem of `wf`, in document order; empty when it is sound.

    Args:
        wf: a workflow that already passed model validation.
        known_functions: ``name@version`` strings; when given, each node's function must
            be one of them (``name@latest`` matches any version of ``name``).
        known_workflows: likewise, for sub-workflow (`workflow:`) nodes; `wf` itself counts.
        expanded: `wf` is a template expansion, whose dotted ids (``prep.fetch``) are its
            own; a user may not write them.
        known_connections: likewise, ``name@version`` of the connections SQL nodes may
            name.
    """
    checker = _Checker(wf, known_functions, expanded=expanded)
    if known_workflows is not None:
        checker.known_workflows = {*known_workflows, wf.ref}
    if known_connections is not None:
        checker.known_connections = set(known_connections)
    return checker.run()


def unconditional_cycles(workflows: Iterable[Workflow]) -> list[tuple[Workflow, int, str]]:
    """Chains of sub-workflow references that come back to where they started with no
    `when` on the way — a run of any of them would nest until the depth limit. Each as
    (a workflow on it, the index of its node that starts the chain, the path by name).
    References are by name: any version may be the one a run resolves."""
    graph = nx.DiGraph()
    first: dict[tuple[str, str], tuple[Workflow, int]] = {}
    for wf in workflows:
        for i, node in enumerate(wf.spec.nodes):
            if node.workflow is not None and node.when is None:
                edge = (wf.metadata.name, split_ref(node.workflow)[0])
                graph.add_edge(*edge)
                first.setdefault(edge, (wf, i))
    out: list[tuple[Workflow, int, str]] = []
    for cycle in sorted(nx.simple_cycles(graph), key=sorted):
        start = cycle.index(min(cycle))
        path = cycle[start:] + cycle[:start]
        wf, index = first[(path[0], path[1 % len(path)])]
        out.append((wf, index, " -> ".join([*path, path[0]])))
    return out


def check_template(
    template: StepTemplate,
    *,
    known_functions: Collection[str] | None = None,
    known_connections: Collection[str] | None = None,
) -> list[DefinitionIssue]:
    """A template's nodes pass the checks a workflow's do; the id ``inputs`` is reserved
    (it names the group's inputs once expanded)."""
    issues = check_workflow(
        as_workflow(template),
        known_functions=known_functions,
        known_connections=known_connections,
    )
    for i, node in enumerate(template.spec.nodes):
        if node.id == INPUTS_NODE:
            issues.append(
                DefinitionIssue(
                    "the node id 'inputs' is reserved in a template (it holds the inputs)",
                    field=f"spec.nodes[{i}].id",
                )
            )
    return issues


def dependencies(wf: Workflow) -> dict[str, set[str]]:
    """Per node id, the nodes it waits for: its `needs` and every node its expressions read.

    Expressions that do not compile contribute nothing (`check_workflow` reports them).
    """
    deps: dict[str, set[str]] = {}
    for i, node in enumerate(wf.spec.nodes):
        refs = set(node.need_ids)
        for _, template in _templates(node, f"spec.nodes[{i}]", lenient=True):
            refs |= template.node_refs
        deps.setdefault(node.id, set()).update(refs)
    return deps


def topological_order(wf: Workflow) -> list[str]:
    """Node ids so that every node comes after the nodes it depends on.

    Ties keep document order, so the result is stable for a given definition.

    Raises:
        DefinitionError: the workflow has a cycle or references unknown nodes.
    """
    position = {node.id: i for i, node in reversed(list(enumerate(wf.spec.nodes)))}
    graph = nx.DiGraph()
    graph.add_nodes_from(position)
    for node_id, deps in dependencies(wf).items():
        unknown = deps - position.keys()
        if unknown:
            raise DefinitionError.single(
                f"node {node_id!r} depends on unknown node(s): {', '.join(sorted(unknown))}",
                field="spec.nodes",
            )
        graph.add_edges_from((dep, node_id) for dep in deps if dep != node_id)
    try:
        return list(nx.lexicographical_topological_sort(graph, key=position.__getitem__))
    except nx.NetworkXUnfeasible:
        issues = [i for i in check_workflow(wf) if i.message.startswith("cycle:")]
        raise DefinitionError(issues) from None


def validate_workflow(
    wf: Workflow,
    *,
    known_functions: Collection[str] | None = None,
    known_workflows: Collection[str] | None = None,
    file: str | None = None,
    known_connections: Collection[str] | None = None,
) -> Workflow:
    """Return `wf` unchanged if `check_workflow` finds nothing; raise otherwise.

    Raises:
        DefinitionError: one issue per problem, each naming `file` and the field.
    """
    issues = check_workflow(
        wf,
        known_functions=known_functions,
        known_workflows=known_workflows,
        known_connections=known_connections,
    )
    if issues:
        raise DefinitionError([_with_file(i, file) for i in issues])
    return wf


def _with_file(issue: DefinitionIssue, file: str | None) -> DefinitionIssue:
    return DefinitionIssue(issue.message, file=file, line=issue.line, field=issue.field)


def _templates(
    node: NodeSpec, base: str, *, lenient: bool = False
) -> Iterator[tuple[str, Template]]:
    """The compiled templates of one node: each input, then forEach, then when."""
    sources: list[tuple[str, object]] = [
        (f"{base}.inputs.{key}", value) for key, value in node.inputs.items()
    ]
    sources += _builtin_values(node, base)
    if node.value is not None:
        sources.append((f"{base}.value", node.value))
    if node.fail is not None:
        sources.append((f"{base}.fail", node.fail))
    if node.for_each is not None:
        sources.append((f"{base}.forEach", node.for_each))
    if node.when is not None:
        sources.append((f"{base}.when", node.when))
    for field, value in sources:
        try:
            yield field, Template.compile(value, field=field)
        except ExpressionError:
            if not lenient:
                raise


def _builtin_values(node: NodeSpec | CompensationSpec, base: str) -> list[tuple[str, object]]:
    """A shell, HTTP or SQL step's templated values, each with its field path."""
    out: list[tuple[str, object]] = []
    if node.shell is not None:
        shell = node.shell
        out += [(f"{base}.shell.argv[{k}]", v) for k, v in enumerate(shell.argv)]
        out += [(f"{base}.shell.env.{k}", v) for k, v in shell.env.items()]
        if shell.cwd is not None:
            out.append((f"{base}.shell.cwd", shell.cwd))
    if node.http is not None:
        http = node.http
        out.append((f"{base}.http.url", http.url))
        out += [
            (f"{base}.http.headers.{k}", v) for k, v in http.headers.items() if isinstance(v, str)
        ]
        out.append((f"{base}.http.body", http.body))
    if node.sql is not None:  # params only: never the query
        out += [(f"{base}.sql.params.{k}", v) for k, v in node.sql.params.items()]
    return out


def _loop_vars(template: Template) -> set[str]:
    """`item` / `index` read as free variables (not as `x.item`, not inside strings)."""
    found: set[str] = set()
    for expr in template.expressions:
        found.update(_LOOP_VAR.findall(_STRING_LITERAL.sub("''", expr.source)))
    return found


class _Checker:
    """One pass over a workflow; collects issues and the dependency graph as it goes."""

    def __init__(
        self, wf: Workflow, known_functions: Collection[str] | None, *, expanded: bool
    ) -> None:
        self.wf = wf
        self.expanded = expanded
        self.known_workflows: set[str] | None = None
        self.known_connections: set[str] | None = None
        self.known = None if known_functions is None else set(known_functions)
        self.issues: list[DefinitionIssue] = []
        self.position: dict[str, int] = {}
        self.declared = set(wf.spec.inputs)
        self.graph = nx.DiGraph()

    def run(self) -> list[DefinitionIssue]:
        for i, node in enumerate(self.wf.spec.nodes):
            if node.id in self.position:
                first = self.position[node.id]
                self._add(
                    f"duplicate node id {node.id!r} (first at spec.nodes[{first}])",
                    f"spec.nodes[{i}].id",
                )
            else:
                self.position[node.id] = i
            if "." in node.id and not self.expanded:
                self._add(
                    f"node id {node.id!r} may not contain '.' (it joins a template group's "
                    "id to its nodes' ids)",
                    f"spec.nodes[{i}].id",
                )
        self.graph.add_nodes_from(self.position)
        for i, node in enumerate(self.wf.spec.nodes):
            self._check_node(i, node)
        for key, value in self.wf.spec.outputs.items():
            self._check_template(f"spec.outputs.{key}", value, owner=None, loop_ok=False)
        for i, hook in enumerate(self.wf.spec.hooks):
            for k, node_id in enumerate(hook.nodes):
                if node_id not in self.position:
                    self._add(f"hook names unknown node {node_id!r}", f"spec.hooks[{i}].nodes[{k}]")
            if "@" in hook.call and self.known is not None:
                self._check_function(f"spec.hooks[{i}].call", hook.call, self.known)
        if self.wf.spec.concurrency is not None:
            self._check_concurrency_key(self.wf.spec.concurrency.key)
        for code, policy in self.wf.spec.on_error.items():
            if policy.function and self.known is not None:
                self._check_function(f"spec.onError.{code}.function", policy.function, self.known)
        self._check_cycles()
        return self.issues

    def _add(self, message: str, field: str) -> None:
        self.issues.append(DefinitionIssue(message, field=field))

    def _check_node(self, i: int, node: NodeSpec) -> None:
        base = f"spec.nodes[{i}]"
        for k, dep in enumerate(node.need_ids):
            field = f"{base}.needs[{k}]"
            if dep == node.id:
                self._add(f"node {dep!r} needs itself", field)
            elif dep not in self.position:
                self._add(f"needs unknown node {dep!r}", field)
            else:
                self.graph.add_edge(dep, node.id)
                on = node.need_kinds[dep]
                group = self.wf.spec.nodes[self.position[dep]]
                if group.template is not None and on in ("failed", "finished"):
                    self._add(
                        f"a template group cannot be needed on {on!r}: put the error "
                        "branch inside the template, or make it a sub-workflow",
                        field,
                    )
        loop_ok = node.for_each is not None
        for key, value in node.inputs.items():
            self._check_template(f"{base}.inputs.{key}", value, owner=node.id, loop_ok=loop_ok)
        for where, templated in _builtin_values(node, base):
            self._check_template(where, templated, owner=node.id, loop_ok=loop_ok)
        if node.value is not None:
            self._check_template(f"{base}.value", node.value, owner=node.id, loop_ok=False)
        if node.fail is not None:
            self._check_template(f"{base}.fail", node.fail, owner=node.id, loop_ok=False)
        if node.for_each is not None:
            field = f"{base}.forEach"
            if not _SINGLE_EXPR.fullmatch(node.for_each) or node.for_each.count("${{") != 1:
                self._add(f"must be a single ${{{{ expression }}}}, got {node.for_each!r}", field)
            else:
                self._check_template(field, node.for_each, owner=node.id, loop_ok=False)
        if node.when is not None:
            field = f"{base}.when"
            if not _SINGLE_EXPR.fullmatch(node.when) or node.when.count("${{") != 1:
                self._add(f"must be a single ${{{{ expression }}}}, got {node.when!r}", field)
            else:
                self._check_template(field, node.when, owner=node.id, loop_ok=False)
        if self.known is not None and node.function is not None:
            self._check_function(f"{base}.function", node.function, self.known)
        if self.known_workflows is not None and node.workflow is not None:
            self._check_function(
                f"{base}.workflow", node.workflow, self.known_workflows, kind="workflow"
            )
        if self.known_connections is not None and node.sql is not None:
            self._check_function(
                f"{base}.sql.connection",
                node.sql.connection,
                self.known_connections,
                kind="connection",
            )
        if node.wait is not None:
            self._check_template(f"{base}.wait.key", node.wait.key, owner=node.id, loop_ok=False)
        if node.compensate is not None:
            self._check_compensation(f"{base}.compensate", node.compensate)

    def _check_compensation(self, base: str, spec: CompensationSpec) -> None:
        """Its expressions may read any node (it runs after the run has stopped), so they
        add no edge to the graph."""
        values = [(f"{base}.inputs.{k}", v) for k, v in spec.inputs.items()]
        for where, value in values + _builtin_values(spec, base):
            self._check_template(where, value, owner=None, loop_ok=True)
        if self.known is not None and spec.function is not None:
            self._check_function(f"{base}.function", spec.function, self.known)
        if self.known_connections is not None and spec.sql is not None:
            self._check_function(
                f"{base}.sql.connection",
                spec.sql.connection,
                self.known_connections,
                kind="connection",
            )

    def _check_template(
        self, field: str, value: object, *, owner: str | None, loop_ok: bool
    ) -> None:
        try:
            template = Template.compile(value, field=field)
        except ExpressionError as exc:
            self.issues.extend(exc.issues)
            return
        for ref in sorted(template.node_refs):
            if ref == owner:
                self._add(f"node {ref!r} reads its own output", field)
            elif ref not in self.position:
                self._add(f"expression reads unknown node {ref!r}", field)
            elif owner is not None:
                self.graph.add_edge(ref, owner)
        for name in sorted(template.input_refs - self.declared):
            self._add(f"expression reads undeclared input {name!r}", field)
        if not loop_ok:
            for var in sorted(_loop_vars(template)):
                where = "in forEach itself" if field.endswith(".forEach") else "without forEach"
                self._add(f"{var!r} is only defined inside forEach (used {where})", field)

    def _check_concurrency_key(self, key: str) -> None:
        """The key is rendered when the run starts, before any node has run: it may read
        inputs and the run, never nodes."""
        field = "spec.concurrency.key"
        try:
            template = Template.compile(key, field=field)
        except ExpressionError as exc:
            self.issues.extend(exc.issues)
            return
        sources = [_STRING_LITERAL.sub("''", e.source) for e in template.expressions]
        if any(_NODES_WORD.search(source) for source in sources):
            self._add("a concurrency key reads only inputs and run (no node has run yet)", field)
        for name in sorted(template.input_refs - self.declared):
            self._add(f"expression reads undeclared input {name!r}", field)
        for var in sorted(_loop_vars(template)):
            self._add(f"{var!r} is only defined inside forEach", field)

    def _check_function(
        self, field: str, ref: str, known: set[str], *, kind: str = "function"
    ) -> None:
        name, version = split_ref(ref)
        versions = sorted(split_ref(k)[1] for k in known if split_ref(k)[0] == name)
        if (version == "latest" and versions) or ref in known:
            return
        hint = f" (known versions: {', '.join(versions)})" if versions else ""
        self._add(f"unknown {kind} {ref!r}{hint}", field)

    def _check_cycles(self) -> None:
        components = [c for c in nx.strongly_connected_components(self.graph) if len(c) > 1]
        for component in sorted(components, key=lambda c: min(self.position[n] for n in c)):
            edges = nx.find_cycle(self.graph.subgraph(component))
            path = [u for u, _ in edges]
            start = min(range(len(path)), key=lambda k: self.position[path[k]])
            path = path[start:] + path[:start]
            cycle = " -> ".join([*path, path[0]])
            self._add(f"cycle: {cycle}", f"spec.nodes[{self.position[path[0]]}]")
