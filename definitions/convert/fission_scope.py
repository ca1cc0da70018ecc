"""What the Fission converter works with: the native Workflows being built, the tasks
they know, the names an expression may use, and the small rules of Fission's syntax
(internal to `actorflow.definitions.convert.fission`) — pure: no Ray, no NATS."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actorflow.definitions.convert import NativeDocument
from actorflow.definitions.convert.fission_expr import (
    Cel,
    JsError,
    cel_string,
)
from actorflow.definitions.yaml_source import FieldPath

if TYPE_CHECKING:
    from actorflow.definitions.convert.fission_tasks import TaskConverter

#: The internal functions of Fission Workflows that are converted to native constructs.
BUILTINS = frozenset(
    {"if", "switch", "foreach", "repeat", "while", "compose", "noop", "nop", "sleep", "fail"}
    | {"javascript", "http"}
)
TOP_FIELDS = frozenset({"apiVersion", "description", "output", "tasks"})
TASK_FIELDS = frozenset({"run", "inputs", "requires"})
INVOCATION_DEFAULTS: dict[str, Any] = {"headers": {}, "query": {}}
NODE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
NAME_OK = re.compile(r"[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?")


class RefusedError(Exception):
    """A construct that is not converted; the message says what to do."""

    def __init__(self, path: FieldPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass
class TaskInfo:
    """What other tasks' expressions see of a task once it is converted."""

    nid: str
    output: str  # CEL of its output
    headers: str  # CEL of its output headers
    inputs: Any  # its Fission inputs (raw)
    path: FieldPath


@dataclass
class Flow:
    """One native Workflow being built."""

    name: str
    path: FieldPath
    description: str = ""
    nodes: list[dict[str, Any]] = field(default_factory=list)
    lines: dict[FieldPath, int] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskInfo] = field(default_factory=dict)
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


def workflow_name(file: str) -> str:
    """`foo.wf.yaml` → `foo`, sanitised to the native name pattern."""
    base = os.path.basename(file)
    for suffix in (".wf.yaml", ".wf.yml", ".yaml", ".yml"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return slug(base) or "fission-workflow"


def slug(text: str) -> str:
    out = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    if len(out) > 64:
        digest = hashlib.sha1(out.encode()).hexdigest()[:8]
        out = out[:55].rstrip("-_") + "-" + digest
    return out


def node_id(tid: str) -> str:
    nid = re.sub(r"[^A-Za-z0-9_]", "_", tid)
    if not nid or not (nid[0].isalpha() or nid[0] == "_"):
        nid = "_" + nid
    return nid[:63]


def is_expression(value: Any) -> bool:
    """Fission's rule: a string wrapped in braces is JavaScript."""
    return isinstance(value, str) and value.strip().startswith("{") and value.strip().endswith("}")


def is_task(value: Any) -> bool:
    return isinstance(value, dict) and "run" in value


def is_workflow(value: Any) -> bool:
    return isinstance(value, dict) and "tasks" in value and "run" not in value


def expr_body(value: str) -> str:
    return value.strip()[1:-1]


def when_of(conditions: list[str]) -> str | None:
    if not conditions:
        return None
    return "${{ " + " && ".join(f"({c})" if len(conditions) > 1 else c for c in conditions) + " }}"


def wrap(cel: str) -> str:
    return "${{ " + cel + " }}"


@dataclass
class Ctx:
    """One task being converted: where it goes and what it waits for."""

    flow: Flow
    tid: str
    nid: str
    run: str
    inputs: Any
    path: FieldPath
    env: Env
    when: list[str]
    needs: list[str]

    def unpack(self) -> tuple[Flow, str, str, Any, FieldPath, Env, list[str], list[str]]:
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


class Env:
    """Names in one expression: the flow's tasks, the current task's inputs, the loop's
    variables and a `javascript` task's arguments."""

    def __init__(
        self,
        conv: TaskConverter,
        flow: Flow,
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
        env = Env(self.conv, self.flow, task, info.inputs, depth=self.depth + 1)
        return self.nested(input_map(info.inputs), env)

    def current_input(self, key: str | None, pos: int) -> Cel:
        if key is not None and key in self.flow.var_exprs:
            return Cel(self.flow.var_exprs[key])
        if key is not None and key in self.flow.loop_vars:
            return Cel(f"inputs.{key}")
        if self.depth > 4:
            raise JsError("task inputs that read each other in a circle", pos)
        inputs = input_map(self.own_inputs)
        env = Env(
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

    def nested(self, value: Any, env: Env) -> Cel:
        """A value read from another place (a task's inputs), as CEL; its problems are
        reported where the reading expression is."""
        try:
            return self.conv.cel_of(value, (), env)
        except RefusedError as exc:
            if isinstance(exc.__cause__, JsError):  # the innermost reason, not a chain
                raise exc.__cause__ from None
            raise JsError(exc.message) from exc

    def invocation_input(self, key: str | None, pos: int) -> Cel:
        if key is None:
            self.flow.inputs.setdefault("default", {"type": "any", "required": False})
            return Cel("inputs", "map")
        if not NODE_ID.fullmatch(key):
            raise JsError(f"invocation input {key!r} is no valid native input name", pos)
        spec: dict[str, Any] = {"type": "any", "required": False}
        if key in INVOCATION_DEFAULTS:
            spec = {"type": "object", "default": INVOCATION_DEFAULTS[key]}
        self.flow.inputs.setdefault(key, spec)
        return Cel(f"inputs.{key}")

    def variable(self, name: str, pos: int) -> Cel:
        if name in self.variables:
            value = self.variables[name]
            return Cel(f"({value.text})", value.kind, value.path)
        if name == "taskId" and self.tid is not None:
            return Cel(cel_string(self.tid), "string")
        raise JsError(f"unknown name {name!r}", pos)


def input_map(inputs: Any) -> dict[str, Any]:
    """Fission stores a scalar (or an expression) under `default`."""
    if inputs is None:
        return {}
    if isinstance(inputs, dict) and not is_task(inputs) and not is_workflow(inputs):
        return dict(inputs)
    return {"default": inputs}


SUFFIXES = ("__if", "__then", "__else", "__switch", "__default", "__each", "__times", "__loop")


def as_int(value: Cel) -> Any:
    """An integer input: a literal stays one (`10`), an expression is cast (`int(…)`)."""
    if value.kind == "number" and re.fullmatch(r"-?\d+", value.text):
        return int(value.text)
    return wrap(f"int({value.text})")


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def is_named_inputs(inputs: Any) -> bool:
    """Whether inputs were written as a map of named inputs (not one scalar/expression)."""
    return isinstance(inputs, dict) and not is_task(inputs) and not is_workflow(inputs)


def workflows_beside(file: str) -> frozenset[str]:
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


__all__ = [
    "BUILTINS",
    "INVOCATION_DEFAULTS",
    "NAME_OK",
    "NODE_ID",
    "SUFFIXES",
    "TASK_FIELDS",
    "TOP_FIELDS",
    "Ctx",
    "Env",
    "Flow",
    "RefusedError",
    "TaskInfo",
    "as_int",
    "expr_body",
    "input_map",
    "is_expression",
    "is_named_inputs",
    "is_task",
    "is_workflow",
    "node_id",
    "query_value",
    "slug",
    "when_of",
    "workflow_name",
    "workflows_beside",
    "wrap",
]
