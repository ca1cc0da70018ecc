"""Fission Workflows (``*.wf.yaml``) → native definitions — pure: no Ray, no NATS.

A Fission workflow is a map of tasks joined by ``requires``; control flow is data: ``if``,
``switch``, ``foreach``, ``repeat`` and ``while`` are functions whose inputs hold task
specs. Each task becomes native nodes whose last one carries the task's id and output:

- a Fission function (``run: whalesay``, ``fission://ns/fn``) → a ``function`` node;
  a workflow beside this file (``run: echowhale`` with ``echowhale.wf.yaml`` next to it)
  → a ``workflow`` node;
- ``noop`` / ``compose`` / ``javascript`` → a ``value`` node; ``sleep`` → a ``sleep``
  node; ``http`` → an ``http`` node; ``fail`` → a ``fail`` node;
- ``if`` / ``switch`` → a value node computing the condition, the branch tasks under
  ``when``, and a value node gathering the chosen branch;
- ``foreach`` → a ``forEach`` sub-workflow node over an extra Workflow (the body);
  ``repeat`` / ``while`` → an extra Workflow that calls itself under a condition;
- an inline workflow (``inputs: {default: {tasks: …}}``) → an extra Workflow and a
  ``workflow`` node.

Every problem of the file is collected (file, line, field, what to do) and raised as one
`DefinitionError`; nothing is converted unless everything is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from actorflow.definitions.convert import ConvertOptions, NativeDocument
from actorflow.definitions.convert.fission_expr import (
    Cel,
    JsError,
    cel_literal,
    cel_string,
    parse,
    to_cel,
    truthy,
)
from actorflow.definitions.errors import DefinitionError, DefinitionIssue
from actorflow.definitions.models import parse_duration
from actorflow.definitions.yaml_source import FieldPath, SourceDocument

#: The internal functions of Fission Workflows that are converted to native constructs.
BUILTINS = frozenset(
    {"if", "switch", "foreach", "repeat", "while", "compose", "noop", "nop", "sleep", "fail"}
    | {"javascript", "http"}
)
_TOP_FIELDS = frozenset({"apiVersion", "description", "output", "tasks"})
_TASK_FIELDS = frozenset({"run", "inputs", "requires"})
_INVOCATION_DEFAULTS: dict[str, Any] = {"headers": {}, "query": {}}
_NODE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_NAME_OK = re.compile(r"[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?")


class _RefusedError(Exception):
    """A construct that is not converted; the message says what to do."""

    def __init__(self, path: FieldPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass
class _Info:
    """What other tasks' expressions see of a task once it is converted."""

    nid: str
    output: str  # CEL of its output
    headers: str  # CEL of its output headers
    inputs: Any  # its Fission inputs (raw)
    path: FieldPath


@dataclass
class _Flow:
    """One native Workflow being built."""

    name: str
    path: FieldPath
    description: str = ""
    nodes: list[dict[str, Any]] = field(default_factory=list)
    lines: dict[FieldPath, int] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, _Info] = field(default_factory=dict)
    loop_vars: frozenset[str] = frozenset()
    var_exprs: dict[str, str] = field(default_factory=dict)  # loop variables computed
    scope_note: str = ""  # why outer tasks are out of reach (loop bodies)

    def document(self) -> NativeDocument:
        spec: dict[str, Any] = {"inputs": self.inputs, "nodes": self.nodes}
        if self.outputs:
            spec["outputs"] = self.outputs
        metadata: dict[str, Any] = {"name": self.name, "version": "1"}
        if self.description:
            metadata["description"] = self.description
        data = {"apiVersion": "actorflow/v1", "kind": "Workflow", "metadata": metadata}
        return NativeDocument({**data, "spec": spec}, dict(self.lines))


def convert(doc: SourceDocument, options: ConvertOptions) -> list[NativeDocument]:
    """The Fission workflow of `doc` as native Workflows (the first is the workflow itself;
    the others are its loop bodies and inline workflows, which it calls).

    Raises:
        DefinitionError: every construct that cannot be converted, at its source line.
    """
    del options  # no Fission-specific options (yet)
    converter = _Converter(doc)
    flows = converter.run()
    if converter.issues:
        raise DefinitionError(converter.issues)
    return [flow.document() for flow in flows]


def workflow_name(file: str) -> str:
    """`foo.wf.yaml` → `foo`, sanitised to the native name pattern."""
    base = os.path.basename(file)
    for suffix in (".wf.yaml", ".wf.yml", ".yaml", ".yml"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return _slug(base) or "fission-workflow"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    if len(slug) > 64:
        digest = hashlib.sha1(slug.encode()).hexdigest()[:8]
        slug = slug[:55].rstrip("-_") + "-" + digest
    return slug


def _node_id(tid: str) -> str:
    nid = re.sub(r"[^A-Za-z0-9_]", "_", tid)
    if not nid or not (nid[0].isalpha() or nid[0] == "_"):
        nid = "_" + nid
    return nid[:63]


def _is_expression(value: Any) -> bool:
    """Fission's rule: a string wrapped in braces is JavaScript."""
    return isinstance(value, str) and value.strip().startswith("{") and value.strip().endswith("}")


def _is_task(value: Any) -> bool:
    return isinstance(value, dict) and "run" in value


def _is_workflow(value: Any) -> bool:
    return isinstance(value, dict) and "tasks" in value and "run" not in value


def _expr_body(value: str) -> str:
    return value.strip()[1:-1]


def _when(conditions: list[str]) -> str | None:
    if not conditions:
        return None
    return "${{ " + " && ".join(f"({c})" if len(conditions) > 1 else c for c in conditions) + " }}"


def _wrap(cel: str) -> str:
    return "${{ " + cel + " }}"


@dataclass
class _Ctx:
    """One task being converted: where it goes and what it waits for."""

    flow: _Flow
    tid: str
    nid: str
    run: str
    inputs: Any
    path: FieldPath
    env: _Env
    when: list[str]
    needs: list[str]

    def unpack(self) -> tuple[_Flow, str, str, Any, FieldPath, _Env, list[str], list[str]]:
        return (
            self.flow,
            self.tid,
            self.nid,
            self.inputs,
            self.path,
            self.env,
            self.when,
            self.needs,
        )


class _Env:
    """Names in one expression: the flow's tasks, the current task's inputs, the loop's
    variables and a `javascript` task's arguments."""

    def __init__(
        self,
        conv: _Converter,
        flow: _Flow,
        tid: str | None,
        own_inputs: Any,
        *,
        variables: Mapping[str, Cel] | None = None,
        depth: int = 0,
    ) -> None:
        self.conv, self.flow, self.tid = conv, flow, tid
        self.own_inputs = own_inputs
        self.variables = dict(variables or {})
        self.depth = depth

    def task_field(self, task: str, field: str, pos: int) -> Cel:
        info = self.flow.tasks.get(task)
        if info is None:
            where = f" {self.flow.scope_note}" if self.flow.scope_note else ""
            raise JsError(f"unknown task {task!r}{where}", pos)
        if field == "Output":
            return Cel(info.output)
        if field == "OutputHeaders":
            return Cel(info.headers, "map" if info.headers == "{}" else "any")
        if field == "Status":
            return Cel(f"nodes.{info.nid}.status", "string")
        if self.depth > 4:
            raise JsError("task inputs that read each other in a circle", pos)
        env = _Env(self.conv, self.flow, task, info.inputs, depth=self.depth + 1)
        return self.nested(_input_map(info.inputs), env)

    def current_input(self, key: str | None, pos: int) -> Cel:
        if key is not None and key in self.flow.var_exprs:
            return Cel(self.flow.var_exprs[key])
        if key is not None and key in self.flow.loop_vars:
            return Cel(f"inputs.{key}")
        if self.depth > 4:
            raise JsError("task inputs that read each other in a circle", pos)
        inputs = _input_map(self.own_inputs)
        env = _Env(
            self.conv,
            self.flow,
            self.tid,
            self.own_inputs,
            variables=self.variables,
            depth=self.depth + 1,
        )
        if key is None:
            return self.nested(inputs, env)
        if key not in inputs:
            return Cel("null", "null")
        return self.nested(inputs[key], env)

    def nested(self, value: Any, env: _Env) -> Cel:
        """A value read from another place (a task's inputs), as CEL; its problems are
        reported where the reading expression is."""
        try:
            return self.conv.cel_of(value, (), env)
        except _RefusedError as exc:
            if isinstance(exc.__cause__, JsError):  # the innermost reason, not a chain
                raise exc.__cause__ from None
            raise JsError(exc.message) from exc

    def invocation_input(self, key: str | None, pos: int) -> Cel:
        if key is None:
            self.flow.inputs.setdefault("default", {"type": "any", "required": False})
            return Cel("inputs", "map")
        if not _NODE_ID.fullmatch(key):
            raise JsError(f"invocation input {key!r} is no valid native input name", pos)
        spec: dict[str, Any] = {"type": "any", "required": False}
        if key in _INVOCATION_DEFAULTS:
            spec = {"type": "object", "default": _INVOCATION_DEFAULTS[key]}
        self.flow.inputs.setdefault(key, spec)
        return Cel(f"inputs.{key}")

    def variable(self, name: str, pos: int) -> Cel:
        if name in self.variables:
            value = self.variables[name]
            return Cel(f"({value.text})", value.kind, value.path)
        if name == "taskId" and self.tid is not None:
            return Cel(cel_string(self.tid), "string")
        raise JsError(f"unknown name {name!r}", pos)


def _input_map(inputs: Any) -> dict[str, Any]:
    """Fission stores a scalar (or an expression) under `default`."""
    if inputs is None:
        return {}
    if isinstance(inputs, dict) and not _is_task(inputs) and not _is_workflow(inputs):
        return dict(inputs)
    return {"default": inputs}


class _Converter:
    def __init__(self, doc: SourceDocument) -> None:
        self.doc = doc
        self.issues: list[DefinitionIssue] = []
        self.flows: list[_Flow] = []
        self.names: set[str] = set()
        self.beside = _workflows_beside(doc.file)

    # --- reporting ----------------------------------------------------------------------

    def issue(self, path: FieldPath, message: str) -> None:
        self.issues.append(self.doc.issue(path, message))

    def guarded(self, path: FieldPath, action: Callable[[], None]) -> None:
        try:
            action()
        except _RefusedError as exc:
            self.issue(exc.path, exc.message)
        except JsError as exc:
            self.issue(path, f"expression: {exc}")

    # --- flows --------------------------------------------------------------------------

    def run(self) -> list[_Flow]:
        data = self.doc.data
        if not isinstance(data, dict):
            self.issue((), "a Fission workflow is a map with output and tasks")
            return []
        api = data.get("apiVersion")
        if api is not None and str(api) not in ("1", "1.0"):
            self.issue(("apiVersion",), f"unsupported Fission apiVersion {api!r} (expected 1)")
        name = self.unique_name(workflow_name(self.doc.file))
        description = data.get("description", "")
        if not isinstance(description, str):
            self.issue(("description",), "description must be a string")
            description = ""
        self.build_flow(data, (), name, description)
        return self.flows

    def unique_name(self, base: str) -> str:
        name, n = base, 2
        while name in self.names:
            name = _slug(f"{base}-{n}")
            n += 1
        self.names.add(name)
        return name

    def new_flow(self, name: str, path: FieldPath, **kw: Any) -> _Flow:
        flow = _Flow(name, path, **kw)
        self.flows.append(flow)
        return flow

    def build_flow(
        self, spec: dict[str, Any], path: FieldPath, name: str, description: str = ""
    ) -> _Flow:
        """A Fission workflow spec (the file's, or an inline one) as a native Workflow."""
        flow = self.new_flow(name, path, description=description)
        flow.inputs["default"] = {"type": "any", "required": False}
        for key in spec:
            if key not in _TOP_FIELDS:
                self.issue(
                    (*path, str(key)),
                    f"unknown field {key!r} (a Fission workflow has apiVersion, description, "
                    "output and tasks)",
                )
        tasks = spec.get("tasks")
        if not isinstance(tasks, dict) or not tasks:
            self.issue((*path, "tasks"), "tasks must be a non-empty map of task id to task")
            return flow
        ok = self.check_tasks(tasks, (*path, "tasks"))
        output = spec.get("output")
        if output is None:
            self.issue(
                (*path, "output"),
                "output is required: the id of the task whose output is the workflow's output",
            )
        elif not isinstance(output, str) or output not in tasks:
            self.issue((*path, "output"), f"output {output!r} is not a task of this workflow")
            output = None
        if not ok:
            return flow
        for tid, task in tasks.items():
            flow.tasks[tid] = self.info(flow, tid, task, (*path, "tasks", tid))
        for tid, task in tasks.items():
            tpath = (*path, "tasks", tid)
            requires = task.get("requires") or []
            requires = requires if isinstance(requires, list) else []
            needs = [flow.tasks[r].nid for r in requires if isinstance(r, str) and r in flow.tasks]
            self.guarded(tpath, self.later(flow, tid, task, tpath, needs))
        if isinstance(output, str):
            flow.outputs["output"] = _wrap(flow.tasks[output].output)
            flow.lines[("spec", "outputs", "output")] = self.doc.line((*path, "output")) or 0
        return flow

    def later(
        self, flow: _Flow, tid: str, task: Any, path: FieldPath, needs: list[str]
    ) -> Callable[[], None]:
        def convert_task() -> None:
            self.task(flow, tid, task, path, when=[], needs=needs)

        return convert_task

    def check_tasks(self, tasks: dict[str, Any], path: FieldPath) -> bool:
        """Shapes, requires and cycles (all reported); False when a task is no task at all,
        so that the tasks cannot be converted (their inputs are still checked otherwise)."""
        shapes_ok = True
        edges: dict[str, list[str]] = {}
        nids: dict[str, str] = {}
        for tid, task in tasks.items():
            tpath = (*path, tid)
            nid = _node_id(str(tid))
            if nid in nids.values() or nid.endswith(tuple(_SUFFIXES)):
                clash = next((t for t, n in nids.items() if n == nid), None)
                what = f"task {clash!r}" if clash else "a node the converter adds"
                self.issue(
                    tpath,
                    f"task id {tid!r} becomes node id {nid!r}, like {what}: rename one of them",
                )
            nids[str(tid)] = nid
            shapes_ok = self.check_task(task, tpath) and shapes_ok
            edges[tid] = []
            if isinstance(task, dict):
                requires = task.get("requires") or []
                if not isinstance(requires, list):
                    self.issue((*tpath, "requires"), "requires must be a list of task ids")
                    continue
                for i, dep in enumerate(requires):
                    if not isinstance(dep, str) or dep not in tasks:
                        self.issue((*tpath, "requires", i), f"unknown task {dep!r} in requires")
                    elif dep == tid:
                        self.issue((*tpath, "requires", i), f"task {tid!r} requires itself")
                    else:
                        edges[tid].append(dep)
        self.check_cycles(edges, path)
        return shapes_ok

    def check_task(self, task: Any, path: FieldPath) -> bool:
        """Whether `task` is a task (a map with a `run`); its unknown fields reported."""
        if not isinstance(task, dict):
            self.issue(path, "a task is a map with run (and inputs, requires)")
            return False
        for key in task:
            if key not in _TASK_FIELDS:
                self.issue(
                    (*path, str(key)),
                    f"unknown field {key!r} (a Fission task has run, inputs and requires)",
                )
        run = task.get("run")
        if not isinstance(run, str) or not run.strip():
            self.issue(
                (*path, "run"), "run must name a function, a workflow or an internal function"
            )
            return False
        return True

    def check_cycles(self, edges: dict[str, list[str]], path: FieldPath) -> None:
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(tid: str) -> None:
            state[tid] = 1
            stack.append(tid)
            for dep in edges[tid]:
                if state.get(dep) == 1:
                    cycle = [*stack[stack.index(dep) :], dep]
                    self.issue(
                        (*path, dep, "requires"),
                        "dependency cycle: " + " -> ".join(cycle) + " (remove one requires)",
                    )
                elif dep not in state:
                    visit(dep)
            stack.pop()
            state[tid] = 2

        for tid in edges:
            if tid not in state:
                visit(tid)

    def info(self, flow: _Flow, tid: str, task: dict[str, Any], path: FieldPath) -> _Info:
        nid = _node_id(tid)
        run = task["run"].strip()
        out, headers = f"nodes.{nid}.output", "{}"
        kind = self.kind(run, task.get("inputs"))
        values = _input_map(task.get("inputs"))
        if kind in ("noop", "nop", "compose") and set(values) == {"default"}:
            inner = values["default"]
            if _is_task(inner) and isinstance(inner.get("run"), str):  # run in the noop's place
                nested = self.info(flow, tid, inner, path)
                return _Info(nid, nested.output, nested.headers, task.get("inputs"), path)
        if kind == "http":
            out, headers = f"nodes.{nid}.output.body", f"nodes.{nid}.output.headers"
        elif kind in ("workflow", "inline", "while"):
            out = f"nodes.{nid}.output.output"
        return _Info(nid, out, headers, task.get("inputs"), path)

    def kind(self, run: str, inputs: Any) -> str:
        if run.startswith("fission://"):
            return "function"
        if run in BUILTINS:
            if run in ("noop", "nop", "compose"):
                default = _input_map(inputs).get("default")
                if _is_workflow(default) and len(_input_map(inputs)) == 1:
                    return "inline"
            return run
        if run in self.beside:
            return "workflow"
        return "function"

    # --- tasks --------------------------------------------------------------------------

    def add(self, flow: _Flow, node: dict[str, Any], path: FieldPath) -> None:
        i = len(flow.nodes)
        flow.nodes.append(node)
        line = self.doc.line(path)
        if line is not None:
            flow.lines[("spec", "nodes", i)] = line
        for key in node:
            sub = {"function": "run", "workflow": "run", "needs": "requires"}.get(key, "inputs")
            sub_line = self.doc.line((*path, sub))
            if sub_line is not None:
                flow.lines[("spec", "nodes", i, key)] = sub_line
        inputs = node.get("inputs")
        if isinstance(inputs, dict):
            for key in inputs:
                sub_line = self.doc.line((*path, "inputs", key))
                if sub_line is not None:
                    flow.lines[("spec", "nodes", i, "inputs", key)] = sub_line

    def base(self, nid: str, when: list[str], needs: list[str]) -> dict[str, Any]:
        node: dict[str, Any] = {"id": nid}
        if needs:
            node["needs"] = list(dict.fromkeys(needs))
        cond = _when(when)
        if cond:
            node["when"] = cond
        return node

    def task(
        self,
        flow: _Flow,
        tid: str,
        task: Any,
        path: FieldPath,
        *,
        when: list[str],
        needs: list[str],
        nid: str | None = None,
    ) -> None:
        """Nodes for one task; the one with id `nid` carries its output."""
        nid = nid or _node_id(tid)
        run = task["run"].strip()
        inputs = task.get("inputs")
        env = _Env(self, flow, tid, inputs)
        kind = self.kind(run, inputs)
        handler = getattr(self, f"task_{kind}")
        handler(_Ctx(flow, tid, nid, run, inputs, path, env, when, needs))

    def task_function(self, c: _Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        node = self.base(nid, when, needs)
        node["function"] = self.function_ref(c.run, (*path, "run"))
        values = self.values(_input_map(inputs), (*path, "inputs"), env, inputs)
        if values:
            node["inputs"] = values
        self.add(flow, node, path)

    def task_workflow(self, c: _Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        node = self.base(nid, when, needs)
        node["workflow"] = _slug(c.run)
        values = self.values(_input_map(inputs), (*path, "inputs"), env, inputs)
        if values:
            node["inputs"] = values
        self.add(flow, node, path)

    def task_inline(self, c: _Ctx) -> None:
        flow, tid, nid, inputs, path, _env, when, needs = c.unpack()
        default = _input_map(inputs)["default"]
        ipath = path + ("inputs",) + (("default",) if _is_task_or_map(inputs) else ())
        child = self.build_flow(default, ipath, self.unique_name(_slug(f"{flow.name}--{tid}")))
        node = self.base(nid, when, needs)
        node["workflow"] = f"{child.name}@1"
        passed = {k: _wrap(f"inputs.{k}") for k in child.inputs}
        for key, spec in child.inputs.items():
            flow.inputs.setdefault(key, spec)
        node["inputs"] = passed
        self.add(flow, node, path)

    def task_noop(self, c: _Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        default = values.get("default")
        if _is_task(default):  # a task returned as data is run in its place
            self.task(
                flow,
                tid,
                default,
                self.default_path(path, inputs),
                when=when,
                needs=needs,
                nid=nid,
            )
            return
        node = self.base(nid, when, needs)
        node["value"] = self.value_of(default, self.default_path(path, inputs), env)
        self.add(flow, node, path)

    task_nop = task_noop

    def task_compose(self, c: _Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        if set(values) <= {"default"}:
            self.task_noop(c)
            return
        node = self.base(nid, when, needs)
        node["value"] = self.values(values, (*path, "inputs"), env, inputs) or "${{ {} }}"
        self.add(flow, node, path)

    def task_javascript(self, c: _Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        ipath = (*path, "inputs")
        expr = values.get("expr")
        if not isinstance(expr, str):
            raise _RefusedError((*ipath, "expr"), "javascript needs expr: a JavaScript expression")
        args = values.get("args", {})
        if not isinstance(args, dict):
            raise _RefusedError(
                (*ipath, "args"), "javascript args must be a map of names to values"
            )
        variables = {k: self.cel_of(v, (*ipath, "args", k), env) for k, v in args.items()}
        body = _expr_body(expr) if _is_expression(expr) else expr
        js_env = _Env(self, flow, tid, inputs, variables=variables)
        try:
            cel = to_cel(parse(body), js_env)
        except JsError as exc:
            raise _RefusedError((*ipath, "expr"), f"javascript expr: {exc}") from exc
        node = self.base(nid, when, needs)
        node["value"] = _wrap(cel.text)
        self.add(flow, node, path)

    def task_sleep(self, c: _Ctx) -> None:
        flow, _tid, nid, inputs, path, _env, when, needs = c.unpack()
        values = _input_map(inputs)
        duration = values.get("default", values.get("duration"))
        dpath = self.default_path(path, inputs)
        if _is_expression(duration) or not isinstance(duration, str | int | float):
            raise _RefusedError(
                dpath,
                "sleep takes a literal duration such as 10s or 1m30s "
                "(a computed one is not converted)",
            )
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise _RefusedError(dpath, f"sleep: {exc}") from exc
        node = self.base(nid, when, needs)
        node["sleep"] = seconds
        self.add(flow, node, path)

    def task_fail(self, c: _Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        message = values.get("default", values.get("message", "fail"))
        node = self.base(nid, when, needs)
        node["fail"] = self.value_of(message, self.default_path(path, inputs), env)
        self.add(flow, node, path)

    def task_http(self, c: _Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        ipath = (*path, "inputs")
        known = {"url", "default", "method", "headers", "query", "body", "content-type"}
        for key in values:
            if key not in known:
                raise _RefusedError(
                    (*ipath, key),
                    f"http input {key!r} is not converted "
                    "(http takes url, method, headers, query, body, content-type)",
                )
        url_key = "url" if "url" in values else "default"
        if url_key not in values:
            raise _RefusedError(ipath, "http needs url (or a default input holding the URL)")
        upath = (*ipath, url_key) if _is_task_or_map(inputs) else ipath
        query = values.get("query") or {}
        if not isinstance(query, dict) or any(_is_expression(v) for v in query.values()):
            raise _RefusedError(
                (*ipath, "query"),
                "http query must be a map of literal values (put computed ones in the url)",
            )
        spec: dict[str, Any] = {"url": self.http_url(values[url_key], upath, env, query)}
        method = values.get("method")
        if method is not None:
            if not isinstance(method, str) or _is_expression(method):
                raise _RefusedError(
                    (*ipath, "method"), "http method must be a literal such as POST"
                )
            spec["method"] = method.upper()
        given = values.get("headers") or {}
        if not isinstance(given, dict):
            raise _RefusedError((*ipath, "headers"), "http headers must be a map")
        headers = {
            str(k): self.value_of(v, (*ipath, "headers", str(k)), env) for k, v in given.items()
        }
        if "content-type" in values:
            headers["Content-Type"] = self.value_of(
                values["content-type"], (*ipath, "content-type"), env
            )
        if headers:
            spec["headers"] = headers
        if "body" in values:
            spec["body"] = self.value_of(values["body"], (*ipath, "body"), env)
        node = self.base(nid, when, needs)
        node["http"] = spec
        self.add(flow, node, path)

    def http_url(self, url: Any, path: FieldPath, env: _Env, query: dict[str, Any]) -> Any:
        """Fission's URL rules: `http://` is assumed when no scheme is given; a `query`
        map is appended."""
        suffix = (
            ("?" + urlencode({str(k): _query_value(v) for k, v in query.items()})) if query else ""
        )
        if _is_expression(url):
            u = self.cel_of(url, path, env).text
            full = f'({u}.startsWith("http") ? {u} : "http://" + {u})'
            return _wrap(f"{full} + {cel_string(suffix)}" if suffix else full)
        if not isinstance(url, str):
            raise _RefusedError(path, "the http url must be a string")
        text = self.value_of(url, path, env)
        text = text if text.startswith("http") else "http://" + text
        if suffix:
            text += ("&" + suffix[1:]) if "?" in text else suffix
        return text

    def task_if(self, c: _Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        ipath = (*path, "inputs")
        if "if" not in values:
            raise _RefusedError(ipath, "if needs an if input: the condition")
        cond_id = f"{nid}__if"
        node = self.base(cond_id, when, needs)
        node["value"] = _wrap(truthy(self.cel_of(values["if"], (*ipath, "if"), env)))
        self.add(flow, node, (*path, "inputs", "if"))
        chosen = f"nodes.{cond_id}.output"
        branches: list[str] = []
        picks = []
        for key, test in (("then", chosen), ("else", f"!{chosen}")):
            picks.append(
                self.branch(
                    c,
                    f"{nid}__{key}",
                    values.get(key),
                    (*ipath, key),
                    when=[*when, test],
                    needs=[cond_id],
                    branches=branches,
                )
            )
        node = self.base(nid, when, [cond_id, *branches])
        node["value"] = _wrap(f"{chosen} ? {picks[0]} : {picks[1]}")
        self.add(flow, node, path)

    def task_switch(self, c: _Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        ipath = (*path, "inputs")
        if "switch" not in values:
            raise _RefusedError(ipath, "switch needs a switch input: the value to match")
        cases = values.get("cases") or []
        if not isinstance(cases, list):
            raise _RefusedError((*ipath, "cases"), "cases must be a list of {case, action}")
        key_id = f"{nid}__switch"
        node = self.base(key_id, when, needs)
        node["value"] = _wrap(self.cel_of(values["switch"], (*ipath, "switch"), env).text)
        self.add(flow, node, (*path, "inputs", "switch"))
        key = f"nodes.{key_id}.output"
        seen: list[str] = []
        branches: list[str] = []
        arms: list[tuple[str, str]] = []
        for i, case in enumerate(cases):
            cpath = (*ipath, "cases", i)
            if not isinstance(case, dict) or not isinstance(case.get("case"), str):
                raise _RefusedError(cpath, "a case is {case: <string>, action: <value or task>}")
            if case["case"] in seen:
                raise _RefusedError((*cpath, "case"), f"duplicate case {case['case']!r}")
            seen.append(case["case"])
            test = f"{key} == {cel_string(case['case'])}"
            pick = self.branch(
                c,
                f"{nid}__case{i}",
                case.get("action"),
                (*cpath, "action"),
                when=[*when, test],
                needs=[key_id],
                branches=branches,
            )
            arms.append((test, pick))
        others = f"!({key} in {cel_literal(seen).text})" if seen else "true"
        pick = self.branch(
            c,
            f"{nid}__default",
            values.get("default"),
            (*ipath, "default"),
            when=[*when, others],
            needs=[key_id],
            branches=branches,
        )
        chain = pick
        for test, value in reversed(arms):
            chain = f"{test} ? {value} : ({chain})"
        node = self.base(nid, when, [key_id, *branches])
        node["value"] = _wrap(chain)
        self.add(flow, node, path)

    def branch(
        self,
        c: _Ctx,
        nid: str,
        value: Any,
        path: FieldPath,
        *,
        when: list[str],
        needs: list[str],
        branches: list[str],
    ) -> str:
        """A branch's value as CEL: a task (converted under `when`) or a value."""
        flow, env = c.flow, c.env
        if _is_task(value):
            if not self.check_task(value, path):
                return "null"  # reported
            flow.tasks.setdefault(nid, self.info(flow, nid, value, path))
            self.task(c.flow, c.tid, value, path, when=when, needs=needs, nid=nid)
            branches.append(nid)
            return self.info(flow, nid, value, path).output
        if _is_workflow(value):
            raise _RefusedError(
                path,
                "an inline workflow as a branch is not converted: wrap it in "
                "a noop task ({run: noop, inputs: {default: <workflow>}})",
            )
        return self.cel_of(value, path, env).text

    def task_foreach(self, c: _Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        ipath = (*path, "inputs")
        key = "foreach" if "foreach" in values else "default"
        if key not in values:
            raise _RefusedError(ipath, "foreach needs a foreach input: the list")
        body = values.get("do")
        if not _is_task(body):
            raise _RefusedError((*ipath, "do"), "foreach needs do: the task run for each item")
        sequential = values.get("sequential", False)
        collect = values.get("collect", True)
        for flag, given in (("sequential", sequential), ("collect", collect)):
            if not isinstance(given, bool):
                raise _RefusedError((*ipath, flag), f"{flag} must be true or false")
        items = self.cel_of(values[key], (*ipath, key), env)
        if sequential:
            self.sequential_foreach(c, items, body, collect)
            return
        child = self.body_flow(
            flow, tid, body, (*ipath, "do"), variables={"_item": None}, what="foreach"
        )
        each = f"{nid}__each"
        node = self.base(each, when, needs)
        node.update(
            workflow=f"{child.name}@1", forEach=_wrap(items.text), inputs={"_item": _wrap("item")}
        )
        self.add(flow, node, path)
        node = self.base(nid, when, [each])
        node["value"] = _wrap(f"nodes.{each}.output.map(o, o.output)" if collect else "null")
        self.add(flow, node, path)

    def sequential_foreach(self, c: _Ctx, items: Cel, body: Any, collect: bool) -> None:
        """One item after the other: a sub-workflow runs the body on item `_index` and then
        itself on the next, gathering the outputs in `_acc`."""
        flow, tid, nid, _inputs, path, _env, when, needs = c.unpack()
        dpath = (*path, "inputs", "do")
        child = self.new_flow(
            self.unique_name(_slug(f"{flow.name}--{tid}")),
            dpath,
            loop_vars=frozenset({"_items", "_index", "_acc"}),
            var_exprs={"_item": "inputs._items[inputs._index]"},
            scope_note="(a foreach body runs as a sub-workflow and sees only its own inputs)",
        )
        child.inputs["_items"] = {"type": "array", "default": []}
        child.inputs["_index"] = {"type": "integer", "default": 0}
        child.inputs["_acc"] = {"type": "array", "default": []}
        go = "inputs._index < size(inputs._items)"
        self.body_task(child, tid, body, dpath, when=[go], needs=[])
        do = child.tasks["do"]
        again: dict[str, Any] = {
            "id": "next",
            "needs": ["do"],
            "when": _wrap(go),
            "workflow": f"{child.name}@1",
            "inputs": {
                "_items": _wrap("inputs._items"),
                "_index": _wrap("inputs._index + 1"),
                "_acc": _wrap(f"inputs._acc + [{do.output}]"),
            },
        }
        self.add(child, again, dpath)
        child.outputs["output"] = _wrap(f"{go} ? nodes.next.output.output : inputs._acc")
        loop = f"{nid}__loop"
        node = self.base(loop, when, needs)
        node.update(
            workflow=f"{child.name}@1",
            inputs={"_items": _wrap(items.text), "_index": 0, "_acc": []},
        )
        self.add(flow, node, path)
        node = self.base(nid, when, [loop])
        node["value"] = _wrap(f"nodes.{loop}.output.output" if collect else "null")
        self.add(flow, node, path)

    def task_repeat(self, c: _Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        ipath = (*path, "inputs")
        body = values.get("do")
        if "times" not in values:
            raise _RefusedError(ipath, "repeat needs times: how many times to run do")
        if not _is_task(body):
            raise _RefusedError((*ipath, "do"), "repeat needs do: the task to repeat")
        times_id = f"{nid}__times"
        node = self.base(times_id, when, needs)
        node["value"] = _as_int(self.cel_of(values["times"], (*ipath, "times"), env))
        self.add(flow, node, (*path, "inputs", "times"))
        first = self.initial_prev(flow, tid, body, (*ipath, "do"))
        child = self.body_flow(
            flow, tid, body, (*ipath, "do"), variables={"_prev": None, "_times": 1}, what="repeat"
        )
        do = child.tasks["do"]
        again = self.base("next", [], ["do"])
        again["when"] = _wrap("inputs._times > 1")
        again.update(
            workflow=f"{child.name}@1",
            inputs={"_prev": _wrap(do.output), "_times": _wrap("inputs._times - 1")},
        )
        self.add(child, again, (*ipath, "do"))
        child.outputs["output"] = _wrap(
            f"nodes.next.output != null ? nodes.next.output.output : {do.output}"
        )
        loop = f"{nid}__loop"
        node = self.base(loop, when, [times_id])
        node["when"] = _when([*when, f"nodes.{times_id}.output > 0"])
        node.update(
            workflow=f"{child.name}@1",
            inputs={"_prev": _wrap(first), "_times": _wrap(f"nodes.{times_id}.output")},
        )
        self.add(flow, node, path)
        node = self.base(nid, when, [times_id, loop])
        node["value"] = _wrap(f"nodes.{loop}.output != null ? nodes.{loop}.output.output : null")
        self.add(flow, node, path)

    def task_while(self, c: _Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = _input_map(inputs)
        ipath = (*path, "inputs")
        body = values.get("do")
        for key in ("expr", "limit"):
            if key not in values:
                raise _RefusedError(ipath, f"while needs {key}")
        if not _is_task(body):
            raise _RefusedError((*ipath, "do"), "while needs do: the task to run while expr holds")
        limit = self.cel_of(values["limit"], (*ipath, "limit"), env)
        first = self.initial_prev(flow, tid, body, (*ipath, "do"))
        child = self.new_flow(
            self.unique_name(_slug(f"{flow.name}--{tid}")),
            ipath,
            loop_vars=frozenset({"_prev", "_count", "_limit"}),
            scope_note="(a while loop's body runs as a sub-workflow and sees only its own inputs)",
        )
        child.inputs["_prev"] = {"type": "any", "default": None}
        child.inputs["_count"] = {"type": "integer", "default": 0}
        child.inputs["_limit"] = {"type": "integer", "default": 0}
        cond_env = _Env(self, child, tid, {**_input_map(inputs), "_prev": None})
        node: dict[str, Any] = {
            "id": "cond",
            "value": _wrap(truthy(self.cel_of(values["expr"], (*ipath, "expr"), cond_env))),
        }
        self.add(child, node, (*ipath, "expr"))
        go = "nodes.cond.output && inputs._count <= inputs._limit"
        over = {
            "id": "limit",
            "needs": ["cond"],
            "fail": "while limit exceeded",
            "when": _wrap("nodes.cond.output && inputs._count > inputs._limit"),
        }
        self.add(child, over, (*ipath, "limit"))
        self.body_task(child, tid, body, (*ipath, "do"), when=[go], needs=["cond"])
        do = child.tasks["do"]
        again = {
            "id": "next",
            "needs": ["do"],
            "when": _wrap(go),
            "workflow": f"{child.name}@1",
            "inputs": {
                "_prev": _wrap(do.output),
                "_count": _wrap("inputs._count + 1"),
                "_limit": _wrap("inputs._limit"),
            },
        }
        self.add(child, again, (*ipath, "do"))
        child.outputs["output"] = _wrap(
            "nodes.cond.output ? nodes.next.output.output : inputs._prev"
        )
        node = self.base(nid, when, needs)
        node.update(
            workflow=f"{child.name}@1",
            inputs={"_prev": _wrap(first), "_count": 0, "_limit": _as_int(limit)},
        )
        self.add(flow, node, path)

    # --- loop bodies --------------------------------------------------------------------

    def body_flow(
        self,
        flow: _Flow,
        tid: str,
        body: Any,
        path: FieldPath,
        *,
        variables: dict[str, Any],
        what: str,
    ) -> _Flow:
        """A sub-workflow running `body` as its node `do`, with loop variables as inputs."""
        child = self.new_flow(
            self.unique_name(_slug(f"{flow.name}--{tid}")),
            path,
            loop_vars=frozenset(variables),
            scope_note=f"(a {what} body runs as a sub-workflow and sees only its own inputs)",
        )
        for key, default in variables.items():
            kind = "integer" if isinstance(default, int) else "any"
            child.inputs[key] = {"type": kind, "default": default}
        self.body_task(child, tid, body, path, when=[], needs=[])
        child.outputs.setdefault("output", _wrap(child.tasks["do"].output))
        return child

    def body_task(
        self,
        child: _Flow,
        tid: str,
        body: Any,
        path: FieldPath,
        *,
        when: list[str],
        needs: list[str],
    ) -> None:
        if not self.check_task(body, path):
            child.tasks["do"] = _Info("do", "null", "{}", None, path)  # reported
            return
        if body.get("requires"):
            raise _RefusedError((*path, "requires"), "a loop body has no requires (it runs alone)")
        child.tasks["do"] = self.info(child, "do", body, path)
        self.task(child, tid, body, path, when=when, needs=needs, nid="do")

    def initial_prev(self, flow: _Flow, tid: str, body: Any, path: FieldPath) -> str:
        """`_prev` of the first iteration: the body's own `_prev` input, else null."""
        given = _input_map(body.get("inputs")).get("_prev")
        if given is None:
            return "null"
        env = _Env(self, flow, tid, body.get("inputs"))
        return self.cel_of(given, (*path, "inputs", "_prev"), env).text

    # --- values -------------------------------------------------------------------------

    def default_path(self, path: FieldPath, inputs: Any) -> FieldPath:
        if _is_task_or_map(inputs):
            return (*path, "inputs", "default")
        return (*path, "inputs")

    def values(
        self, values: dict[str, Any], path: FieldPath, env: _Env, raw: Any
    ) -> dict[str, Any]:
        """Named inputs as native values (a scalar input was stored under `default`); a
        name that is no Python keyword argument (`content-type`) gets `_` for the rest
        (`content_type`)."""
        out: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for key, value in values.items():
            vpath = (*path, key) if _is_task_or_map(raw) else path
            name = re.sub(r"[^A-Za-z0-9_]", "_", str(key))
            if not _NODE_ID.fullmatch(name) or name in out:
                self.issue(
                    vpath,
                    f"input name {key!r} is no valid native input name (letters, digits and _)"
                    if name not in out
                    else f"inputs {origin[name]!r} and {key!r} are both the native input "
                    f"{name!r}: rename one",
                )
                continue
            origin[name] = str(key)
            try:  # one issue per input: the others are still checked
                out[name] = self.value_of(value, vpath, env)
            except _RefusedError as exc:
                self.issue(exc.path, exc.message)
        return out

    def value_of(self, value: Any, path: FieldPath, env: _Env) -> Any:
        """A Fission value as a native one: literals stay, `{ js }` becomes `${{ cel }}`."""
        if _is_expression(value):
            return _wrap(self.cel_of(value, path, env).text)
        if isinstance(value, str):
            if "${{" in value:
                raise _RefusedError(
                    path, "a literal holding '${{' would read as a native expression"
                )
            return value
        if _is_task(value):
            raise _RefusedError(
                path,
                "a task as an input is converted only where control flow "
                "takes one (if, switch, foreach, repeat, while, noop)",
            )
        if _is_workflow(value):
            raise _RefusedError(
                path, "an inline workflow is converted as the only input of a noop or compose task"
            )
        if isinstance(value, list):
            return [self.value_of(v, (*path, i), env) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {str(k): self.value_of(v, (*path, str(k)), env) for k, v in value.items()}
        return value

    def cel_of(self, value: Any, path: FieldPath, env: _Env) -> Cel:
        """A Fission value as one CEL expression."""
        if _is_expression(value):
            try:
                return to_cel(parse(_expr_body(value)), env)
            except JsError as exc:
                raise _RefusedError(path, f"expression {value.strip()!r}: {exc}") from exc
        if _is_task(value) or _is_workflow(value):
            raise _RefusedError(path, "a task or workflow here is not converted")
        if isinstance(value, list):
            items = [self.cel_of(v, (*path, i), env).text for i, v in enumerate(value)]
            return Cel("[" + ", ".join(items) + "]", "list")
        if isinstance(value, dict):
            body = ", ".join(
                f"{cel_string(str(k))}: {self.cel_of(v, (*path, str(k)), env).text}"
                for k, v in value.items()
            )
            return Cel("{" + body + "}", "map")
        return cel_literal(value)

    def function_ref(self, run: str, path: FieldPath) -> str:
        """`whalesay` → `whalesay`; `fission://ns/fn` → `ns__fn` (native functions have no
        namespaces); `fission://fn` → `fn`."""
        name = run
        if run.startswith("fission://"):
            parts = [p for p in run[len("fission://") :].split("/") if p]
            if not 1 <= len(parts) <= 2:
                raise _RefusedError(path, f"expected fission://[namespace/]function, got {run!r}")
            name = "__".join(parts)
        ref = name.lower()
        if not _NAME_OK.fullmatch(ref):
            raise _RefusedError(
                path,
                f"function name {name!r} is no valid native name (lowercase "
                "letters, digits, - and _)",
            )
        return ref


_SUFFIXES = ("__if", "__then", "__else", "__switch", "__default", "__each", "__times", "__loop")


def _as_int(value: Cel) -> Any:
    """An integer input: a literal stays one (`10`), an expression is cast (`int(…)`)."""
    if value.kind == "number" and re.fullmatch(r"-?\d+", value.text):
        return int(value.text)
    return _wrap(f"int({value.text})")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _is_task_or_map(inputs: Any) -> bool:
    """Whether inputs were written as a map of named inputs (not one scalar/expression)."""
    return isinstance(inputs, dict) and not _is_task(inputs) and not _is_workflow(inputs)


def _workflows_beside(file: str) -> frozenset[str]:
    """Names of the Fission workflows in the folder of `file` (a `run` naming one is a
    sub-workflow call, as in Fission, where workflows and functions share one namespace)."""
    folder = os.path.dirname(file)
    if not file or file.startswith("<") or not os.path.isdir(folder or "."):
        return frozenset()
    try:
        entries = os.listdir(folder or ".")
    except OSError:
        return frozenset()
    names = {e[: -len(".wf.yaml")] for e in entries if e.endswith(".wf.yaml")}
    own = os.path.basename(file)
    return frozenset(n for n in names if f"{n}.wf.yaml" != own)


__all__ = ["BUILTINS", "convert", "workflow_name"]
