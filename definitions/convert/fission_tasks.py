"""The Fission converter's core (internal to `actorflow.definitions.convert.fission`):
a file's tasks checked (shapes, requires, cycles), each plain task — a function, a
sub-workflow, noop / compose / javascript, sleep, fail, http — made into native nodes,
and Fission values made into native values and CEL. Control flow is in `fission`. Pure:
no Ray, no NATS."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from actorflow.definitions.convert.fission_expr import (
    Cel,
    JsError,
    cel_literal,
    cel_string,
    parse,
    to_cel,
)
from actorflow.definitions.convert.fission_scope import (
    BUILTINS,
    NAME_OK,
    NODE_ID,
    SUFFIXES,
    TASK_FIELDS,
    TOP_FIELDS,
    Ctx,
    Env,
    Flow,
    RefusedError,
    TaskInfo,
    expr_body,
    input_map,
    is_expression,
    is_named_inputs,
    is_task,
    is_workflow,
    node_id,
    query_value,
    slug,
    when_of,
    workflow_name,
    workflows_beside,
    wrap,
)
from actorflow.definitions.errors import DefinitionIssue
from actorflow.definitions.models import parse_duration
from actorflow.definitions.yaml_source import FieldPath, SourceDocument


class TaskConverter:
    """Converts one Fission document; control-flow tasks are added by the subclass."""

    def __init__(self, doc: SourceDocument) -> None:
        self.doc = doc
        self.issues: list[DefinitionIssue] = []
        self.flows: list[Flow] = []
        self.names: set[str] = set()
        self.beside = workflows_beside(doc.file)

    # --- reporting ----------------------------------------------------------------------

    def issue(self, path: FieldPath, message: str) -> None:
        self.issues.append(self.doc.issue(path, message))

    def guarded(self, path: FieldPath, action: Callable[[], None]) -> None:
        try:
            action()
        except RefusedError as exc:
            self.issue(exc.path, exc.message)
        except JsError as exc:
            self.issue(path, f"expression: {exc}")

    # --- flows --------------------------------------------------------------------------

    def run(self) -> list[Flow]:
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
            name = slug(f"{base}-{n}")
            n += 1
        self.names.add(name)
        return name

    def new_flow(self, name: str, path: FieldPath, **kw: Any) -> Flow:
        flow = Flow(name, path, **kw)
        self.flows.append(flow)
        return flow

    def build_flow(
        self, spec: dict[str, Any], path: FieldPath, name: str, description: str = ""
    ) -> Flow:
        """A Fission workflow spec (the file's, or an inline one) as a native Workflow."""
        flow = self.new_flow(name, path, description=description)
        flow.inputs["default"] = {"type": "any", "required": False}
        for key in spec:
            if key not in TOP_FIELDS:
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
            flow.outputs["output"] = wrap(flow.tasks[output].output)
            flow.lines[("spec", "outputs", "output")] = self.doc.line((*path, "output")) or 0
        return flow

    def later(
        self, flow: Flow, tid: str, task: Any, path: FieldPath, needs: list[str]
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
            nid = node_id(str(tid))
            if nid in nids.values() or nid.endswith(tuple(SUFFIXES)):
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
            if key not in TASK_FIELDS:
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

    def info(self, flow: Flow, tid: str, task: dict[str, Any], path: FieldPath) -> TaskInfo:
        nid = node_id(tid)
        run = task["run"].strip()
        out, headers = f"nodes.{nid}.output", "{}"
        kind = self.kind(run, task.get("inputs"))
        values = input_map(task.get("inputs"))
        if kind in ("noop", "nop", "compose") and set(values) == {"default"}:
            inner = values["default"]
            if is_task(inner) and isinstance(inner.get("run"), str):  # run in the noop's place
                nested = self.info(flow, tid, inner, path)
                return TaskInfo(nid, nested.output, nested.headers, task.get("inputs"), path)
        if kind == "http":
            out, headers = f"nodes.{nid}.output.body", f"nodes.{nid}.output.headers"
        elif kind in ("workflow", "inline", "while"):
            out = f"nodes.{nid}.output.output"
        return TaskInfo(nid, out, headers, task.get("inputs"), path)

    def kind(self, run: str, inputs: Any) -> str:
        if run.startswith("fission://"):
            return "function"
        if run in BUILTINS:
            if run in ("noop", "nop", "compose"):
                default = input_map(inputs).get("default")
                if is_workflow(default) and len(input_map(inputs)) == 1:
                    return "inline"
            return run
        if run in self.beside:
            return "workflow"
        return "function"

    # --- tasks --------------------------------------------------------------------------

    def add(self, flow: Flow, node: dict[str, Any], path: FieldPath) -> None:
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
        cond = when_of(when)
        if cond:
            node["when"] = cond
        return node

    def task(
        self,
        flow: Flow,
        tid: str,
        task: Any,
        path: FieldPath,
        *,
        when: list[str],
        needs: list[str],
        nid: str | None = None,
    ) -> None:
        """Nodes for one task; the one with id `nid` carries its output."""
        nid = nid or node_id(tid)
        run = task["run"].strip()
        inputs = task.get("inputs")
        env = Env(self, flow, tid, inputs)
        kind = self.kind(run, inputs)
        handler = getattr(self, f"task_{kind}")
        handler(Ctx(flow, tid, nid, run, inputs, path, env, when, needs))

    def task_function(self, c: Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        node = self.base(nid, when, needs)
        node["function"] = self.function_ref(c.run, (*path, "run"))
        values = self.values(input_map(inputs), (*path, "inputs"), env, inputs)
        if values:
            node["inputs"] = values
        self.add(flow, node, path)

    def task_workflow(self, c: Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        node = self.base(nid, when, needs)
        node["workflow"] = slug(c.run)
        values = self.values(input_map(inputs), (*path, "inputs"), env, inputs)
        if values:
            node["inputs"] = values
        self.add(flow, node, path)

    def task_inline(self, c: Ctx) -> None:
        flow, tid, nid, inputs, path, _env, when, needs = c.unpack()
        default = input_map(inputs)["default"]
        ipath = path + ("inputs",) + (("default",) if is_named_inputs(inputs) else ())
        child = self.build_flow(default, ipath, self.unique_name(slug(f"{flow.name}--{tid}")))
        node = self.base(nid, when, needs)
        node["workflow"] = f"{child.name}@1"
        passed = {k: wrap(f"inputs.{k}") for k in child.inputs}
        for key, spec in child.inputs.items():
            flow.inputs.setdefault(key, spec)
        node["inputs"] = passed
        self.add(flow, node, path)

    def task_noop(self, c: Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        default = values.get("default")
        if is_task(default):  # a task returned as data is run in its place
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

    def task_compose(self, c: Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        if set(values) <= {"default"}:
            self.task_noop(c)
            return
        node = self.base(nid, when, needs)
        node["value"] = self.values(values, (*path, "inputs"), env, inputs) or "${{ {} }}"
        self.add(flow, node, path)

    def task_javascript(self, c: Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        ipath = (*path, "inputs")
        expr = values.get("expr")
        if not isinstance(expr, str):
            raise RefusedError((*ipath, "expr"), "javascript needs expr: a JavaScript expression")
        args = values.get("args", {})
        if not isinstance(args, dict):
            raise RefusedError((*ipath, "args"), "javascript args must be a map of names to values")
        variables = {k: self.cel_of(v, (*ipath, "args", k), env) for k, v in args.items()}
        body = expr_body(expr) if is_expression(expr) else expr
        js_env = Env(self, flow, tid, inputs, variables=variables)
        try:
            cel = to_cel(parse(body), js_env)
        except JsError as exc:
            raise RefusedError((*ipath, "expr"), f"javascript expr: {exc}") from exc
        node = self.base(nid, when, needs)
        node["value"] = wrap(cel.text)
        self.add(flow, node, path)

    def task_sleep(self, c: Ctx) -> None:
        flow, _tid, nid, inputs, path, _env, when, needs = c.unpack()
        values = input_map(inputs)
        duration = values.get("default", values.get("duration"))
        dpath = self.default_path(path, inputs)
        if is_expression(duration) or not isinstance(duration, str | int | float):
            raise RefusedError(
                dpath,
                "sleep takes a literal duration such as 10s or 1m30s "
                "(a computed one is not converted)",
            )
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise RefusedError(dpath, f"sleep: {exc}") from exc
        node = self.base(nid, when, needs)
        node["sleep"] = seconds
        self.add(flow, node, path)

    def task_fail(self, c: Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        message = values.get("default", values.get("message", "fail"))
        node = self.base(nid, when, needs)
        node["fail"] = self.value_of(message, self.default_path(path, inputs), env)
        self.add(flow, node, path)

    def task_http(self, c: Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        ipath = (*path, "inputs")
        known = {"url", "default", "method", "headers", "query", "body", "content-type"}
        for key in values:
            if key not in known:
                raise RefusedError(
                    (*ipath, key),
                    f"http input {key!r} is not converted "
                    "(http takes url, method, headers, query, body, content-type)",
                )
        url_key = "url" if "url" in values else "default"
        if url_key not in values:
            raise RefusedError(ipath, "http needs url (or a default input holding the URL)")
        upath = (*ipath, url_key) if is_named_inputs(inputs) else ipath
        query = values.get("query") or {}
        if not isinstance(query, dict) or any(is_expression(v) for v in query.values()):
            raise RefusedError(
                (*ipath, "query"),
                "http query must be a map of literal values (put computed ones in the url)",
            )
        spec: dict[str, Any] = {"url": self.http_url(values[url_key], upath, env, query)}
        method = values.get("method")
        if method is not None:
            if not isinstance(method, str) or is_expression(method):
                raise RefusedError((*ipath, "method"), "http method must be a literal such as POST")
            spec["method"] = method.upper()
        given = values.get("headers") or {}
        if not isinstance(given, dict):
            raise RefusedError((*ipath, "headers"), "http headers must be a map")
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

    def http_url(self, url: Any, path: FieldPath, env: Env, query: dict[str, Any]) -> Any:
        """Fission's URL rules: `http://` is assumed when no scheme is given; a `query`
        map is appended."""
        suffix = (
            ("?" + urlencode({str(k): query_value(v) for k, v in query.items()})) if query else ""
        )
        if is_expression(url):
            u = self.cel_of(url, path, env).text
            full = f'({u}.startsWith("http") ? {u} : "http://" + {u})'
            return wrap(f"{full} + {cel_string(suffix)}" if suffix else full)
        if not isinstance(url, str):
            raise RefusedError(path, "the http url must be a string")
        text = self.value_of(url, path, env)
        text = text if text.startswith("http") else "http://" + text
        if suffix:
            text += ("&" + suffix[1:]) if "?" in text else suffix
        return text

    # --- values -------------------------------------------------------------------------

    def default_path(self, path: FieldPath, inputs: Any) -> FieldPath:
        if is_named_inputs(inputs):
            return (*path, "inputs", "default")
        return (*path, "inputs")

    def values(self, values: dict[str, Any], path: FieldPath, env: Env, raw: Any) -> dict[str, Any]:
        """Named inputs as native values (a scalar input was stored under `default`); a
        name that is no Python keyword argument (`content-type`) gets `_` for the rest
        (`content_type`)."""
        out: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for key, value in values.items():
            vpath = (*path, key) if is_named_inputs(raw) else path
            name = re.sub(r"[^A-Za-z0-9_]", "_", str(key))
            if not NODE_ID.fullmatch(name) or name in out:
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
            except RefusedError as exc:
                self.issue(exc.path, exc.message)
        return out

    def value_of(self, value: Any, path: FieldPath, env: Env) -> Any:
        """A Fission value as a native one: literals stay, `{ js }` becomes `${{ cel }}`."""
        if is_expression(value):
            return wrap(self.cel_of(value, path, env).text)
        if isinstance(value, str):
            if "${{" in value:
                raise RefusedError(
                    path, "a literal holding '${{' would read as a native expression"
                )
            return value
        if is_task(value):
            raise RefusedError(
                path,
                "a task as an input is converted only where control flow "
                "takes one (if, switch, foreach, repeat, while, noop)",
            )
        if is_workflow(value):
            raise RefusedError(
                path, "an inline workflow is converted as the only input of a noop or compose task"
            )
        if isinstance(value, list):
            return [self.value_of(v, (*path, i), env) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {str(k): self.value_of(v, (*path, str(k)), env) for k, v in value.items()}
        return value

    def cel_of(self, value: Any, path: FieldPath, env: Env) -> Cel:
        """A Fission value as one CEL expression."""
        if is_expression(value):
            try:
                return to_cel(parse(expr_body(value)), env)
            except JsError as exc:
                raise RefusedError(path, f"expression {value.strip()!r}: {exc}") from exc
        if is_task(value) or is_workflow(value):
            raise RefusedError(path, "a task or workflow here is not converted")
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
                raise RefusedError(path, f"expected fission://[namespace/]function, got {run!r}")
            name = "__".join(parts)
        ref = name.lower()
        if not NAME_OK.fullmatch(ref):
            raise RefusedError(
                path,
                f"function name {name!r} is no valid native name (lowercase "
                "letters, digits, - and _)",
            )
        return ref


__all__ = ["TaskConverter"]
