"""Compile a validated workflow into the plan a run executes.

The plan pins every function reference to a concrete version (resolved once, when the run
starts, and recorded in the run's first event) and holds the compiled expressions, so a run
never changes version or re-parses anything halfway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actorflow.definitions.errors import DefinitionError, InputError
from actorflow.definitions.expressions import Expression, Template, strip_braces
from actorflow.definitions.models import (
    CompensationSpec,
    Connection,
    ErrorPolicy,
    Function,
    HookSpec,
    HttpSpec,
    InputSpec,
    NeedKind,
    NodeKind,
    NodeSpec,
    Resources,
    RetryPolicy,
    SqlSpec,
    Workflow,
    builtin_function,
    split_ref,
)
from actorflow.definitions.priorities import DEFAULT_PRIORITY

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class PlannedCompensation:
    """A node's compensation, its function pinned to a version."""

    function: str
    version: str
    inputs: Template
    retry: RetryPolicy


@dataclass(frozen=True)
class PlannedNode:
    id: str
    kind: NodeKind
    function: str
    version: str
    deps: frozenset[str]
    inputs: Template
    for_each: Expression | None
    retry: RetryPolicy
    spec: NodeSpec
    wait_key: Template | None = None
    needs: Mapping[str, NeedKind] = field(default_factory=dict)  # deps and what each awaits
    when: Expression | None = None
    compensation: PlannedCompensation | None = None

    @property
    def need_order(self) -> tuple[str, ...]:
        return tuple(self.needs)


TASK_KINDS = frozenset({"function", "shell", "http", "sql", "workflow"})
"""Node kinds whose work is a task on a function pool."""


@dataclass(frozen=True)
class PlannedPolicy:
    """An error policy with its remediation function (if any) pinned to a version."""

    policy: ErrorPolicy
    function: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Plan:
    workflow: str
    version: str
    nodes: dict[str, PlannedNode]
    outputs: Template
    inputs: Mapping[str, InputSpec]
    on_error: Mapping[str, PlannedPolicy] = field(default_factory=dict)
    hooks: tuple[HookSpec, ...] = ()
    handled: frozenset[str] = frozenset()
    """Nodes whose failure does not stop the run: ``continueOn: failed``, or needed by an
    error branch (``on: failed`` / ``finished``)."""
    continues: frozenset[str] = frozenset()
    """Nodes with ``continueOn: failed``."""
    dependants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    timeout: float | None = None  # the whole run's, seconds
    priority: int = DEFAULT_PRIORITY
    """The workflow's: its runs' tasks wait at it unless the run or the node says else."""

    def policy_for(self, code: str) -> PlannedPolicy | None:
        return self.on_error.get(code) or self.on_error.get("default")


def function_refs(wf: Workflow) -> set[str]:
    """Every function reference the workflow can call: its nodes' and its remediations'."""
    refs = {ref for node in wf.spec.nodes if (ref := node.function_ref)}
    refs |= {node.compensate.function_ref for node in wf.spec.nodes if node.compensate}
    refs |= {h.call for h in wf.spec.hooks if "@" in h.call}
    return refs | {p.function for p in wf.spec.on_error.values() if p.function}


def _request_of(spec: HttpSpec) -> dict[str, Any]:
    """An HTTP node's task inputs. Its success condition is passed as text: it is CEL over
    the response, evaluated by the replica (a `${{ }}` here would be rendered now)."""
    data = spec.model_dump(mode="json")
    data["success_condition"] = strip_braces(spec.success_condition).strip()
    return data


def connection_refs(wf: Workflow) -> set[str]:
    """Every connection reference the workflow's SQL nodes and compensations make (as
    written)."""
    steps: list[NodeSpec | CompensationSpec] = list(wf.spec.nodes)
    steps += [node.compensate for node in wf.spec.nodes if node.compensate]
    return {step.sql.connection for step in steps if step.sql is not None}


def _query_of(sql: SqlSpec, node: str, connections: Mapping[str, Connection]) -> dict[str, Any]:
    """A SQL step's task inputs: the statement, its params (rendered, then bound by the
    replica), and the connection pinned when the run started — its URL and the password's
    reference, never a password."""
    connection = connections.get(sql.connection)
    if connection is None:
        raise DefinitionError.single(
            f"connection {sql.connection!r} of node {node!r} was not resolved",
            field="spec.nodes",
        )
    password = connection.spec.password
    return {
        "connection": connection.ref,
        "url": connection.spec.url,
        "password": password.model_dump(mode="json") if password is not None else None,
        "query": sql.query,
        "params": dict(sql.params),
        "max_rows": sql.max_rows,
    }


def workflow_refs(wf: Workflow) -> set[str]:
    """Every sub-workflow reference the workflow's nodes make (as written)."""
    return {node.workflow for node in wf.spec.nodes if node.workflow is not None}


def _child_of(node: NodeSpec, workflows: Mapping[str, str]) -> dict[str, Any]:
    """A `workflow` node's task inputs: which child to start, with what, how deep."""
    assert node.workflow is not None
    if node.workflow not in workflows:
        raise DefinitionError.single(
            f"sub-workflow {node.workflow!r} of node {node.id!r} was not resolved",
            field="spec.nodes",
        )
    return {
        "workflow": split_ref(node.workflow)[0],
        "version": workflows[node.workflow],
        "inputs": dict(node.inputs),
        "depth": "${{ run.depth + 1 }}",
        "on_parent_stop": node.on_parent_stop,
        # The child is part of this node's work: it runs at the node's priority.
        "priority": node.priority if node.priority is not None else "${{ run.priority }}",
    }


def builtin_functions(wf: Workflow) -> list[Function]:
    """The implicit pools the workflow's shell, HTTP and SQL nodes run on, one per kind and
    resource shape."""
    steps: list[NodeSpec | CompensationSpec] = list(wf.spec.nodes)
    steps += [node.compensate for node in wf.spec.nodes if node.compensate]
    out = {
        f.ref: f
        for step in steps
        if (kind := step.builtin) is not None
        for f in [builtin_function(kind, step.resources or Resources(cpus=0.1))]
    }
    return list(out.values())


_COMPENSATED = {"inputs": "${{ step.inputs }}", "output": "${{ step.output }}"}


def _compensation(
    node: NodeSpec,
    functions: Mapping[str, str],
    connections: Mapping[str, Connection],
    where: str,
) -> PlannedCompensation:
    spec = node.compensate
    assert spec is not None
    if spec.shell is not None:
        inputs = Template.compile(spec.shell.model_dump(), field=f"{where}.shell")
    elif spec.http is not None:
        inputs = Template.compile(_request_of(spec.http), field=f"{where}.http")
    elif spec.sql is not None:
        query = _query_of(spec.sql, node.id, connections)
        inputs = Template.compile(query, field=f"{where}.sql")
    else:
        inputs = Template.compile(spec.inputs or _COMPENSATED, field=f"{where}.inputs")
    ref = spec.function_ref
    return PlannedCompensation(
        function=split_ref(ref)[0],
        version=functions[ref],
        inputs=inputs,
        retry=spec.retry or RetryPolicy(),
    )


def compile_plan(
    wf: Workflow,
    functions: Mapping[str, str],
    retries: Mapping[str, RetryPolicy] | None = None,
    workflows: Mapping[str, str] | None = None,
    *,
    connections: Mapping[str, Connection] | None = None,
) -> Plan:
    """`functions` maps each function reference (as written) to a concrete version, and
    `workflows` each sub-workflow reference; `retries` gives each node's retry policy
    where its function's differs from the default; `connections` maps each SQL node's
    connection reference to the `Connection` it resolved to when the run started.
    """
    retries = retries or {}
    workflows = workflows or {}
    connections = connections or {}
    nodes: dict[str, PlannedNode] = {}
    for i, node in enumerate(wf.spec.nodes):
        where = f"spec.nodes[{i}]"
        if node.shell is not None:  # its task's inputs are the command, rendered
            inputs = Template.compile(node.shell.model_dump(), field=f"{where}.shell")
        elif node.http is not None:  # the request; secrets stay references until the call
            inputs = Template.compile(_request_of(node.http), field=f"{where}.http")
        elif node.sql is not None:  # only params are templated; the query stays verbatim
            inputs = Template.compile(
                _query_of(node.sql, node.id, connections), field=f"{where}.sql"
            )
        elif node.workflow is not None:  # the child run to start; its inputs, rendered
            inputs = Template.compile(_child_of(node, workflows), field=f"{where}.inputs")
        elif node.value is not None:
            inputs = Template.compile(node.value, field=f"{where}.value")
        elif node.fail is not None:  # its message, rendered when it is reached
            inputs = Template.compile(node.fail, field=f"{where}.fail")
        elif node.template is not None:
            raise DefinitionError.single(
                f"template node {node.id!r} was not expanded", field=f"{where}.template"
            )
        else:
            inputs = Template.compile(node.inputs, field=f"{where}.inputs")
        for_each = (
            Template.compile(node.for_each, field=f"{where}.forEach").expressions[0]
            if node.for_each
            else None
        )
        wait_key = Template.compile(node.wait.key, field=f"{where}.wait.key") if node.wait else None
        when = (
            Template.compile(node.when, field=f"{where}.when").expressions[0] if node.when else None
        )
        refs = inputs.node_refs | (for_each.node_refs if for_each else set())
        refs |= wait_key.node_refs if wait_key else set()
        refs |= when.node_refs if when else set()
        needs: dict[str, NeedKind] = dict.fromkeys(sorted(refs), "succeeded")
        needs.update(node.need_kinds)
        ref = node.function_ref
        nodes[node.id] = PlannedNode(
            id=node.id,
            kind=node.kind,
            function=split_ref(ref)[0] if ref else "",
            version=functions[ref] if ref else "",
            deps=frozenset(needs),
            inputs=inputs,
            for_each=for_each,
            retry=node.retry or retries.get(node.id) or RetryPolicy(),
            spec=node,
            wait_key=wait_key,
            needs=needs,
            when=when,
            compensation=(
                _compensation(node, functions, connections, f"{where}.compensate")
                if node.compensate
                else None
            ),
        )
    on_error = {
        code: PlannedPolicy(
            policy,
            split_ref(policy.function)[0] if policy.function else None,
            functions[policy.function] if policy.function else None,
        )
        for code, policy in wf.spec.on_error.items()
    }
    return Plan(
        workflow=wf.metadata.name,
        version=wf.metadata.version,
        nodes=nodes,
        outputs=Template.compile(wf.spec.outputs, field="spec.outputs"),
        inputs=wf.spec.inputs,
        on_error=on_error,
        hooks=tuple(wf.spec.hooks),
        handled=frozenset(
            {n.id for n in wf.spec.nodes if n.continue_on == "failed"}
            | {d for p in nodes.values() for d, on in p.needs.items() if on in _HANDLING}
        ),
        continues=frozenset(n.id for n in wf.spec.nodes if n.continue_on == "failed"),
        dependants=_dependants(nodes),
        timeout=wf.spec.timeout,
        priority=wf.spec.priority,
    )


_HANDLING = frozenset({"failed", "finished"})  # needs that take a failure in their stride


def _dependants(nodes: Mapping[str, PlannedNode]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for planned in nodes.values():
        for dep in planned.needs:
            out.setdefault(dep, []).append(planned.id)
    return {node_id: tuple(ids) for node_id, ids in out.items()}


def bind_inputs(declared: Mapping[str, InputSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check `given` against the declared inputs and fill defaults; every problem at once."""
    problems: list[str] = []
    unknown = sorted(set(given) - set(declared))
    if unknown:
        problems.append(f"unknown input(s): {', '.join(unknown)}")
    bound: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
            expected = _JSON_TYPES.get(spec.type)
            bad_bool = isinstance(value, bool) and spec.type in ("integer", "number")
            if expected and (not isinstance(value, expected) or bad_bool):
                problems.append(f"input {name!r} must be {spec.type}, got {type(value).__name__}")
            bound[name] = value
        elif spec.required:
            problems.append(f"missing required input {name!r}")
        else:
            bound[name] = spec.default
    if problems:
        raise InputError("; ".join(problems))
    return bound
