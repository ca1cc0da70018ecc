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

This module holds the control-flow functions; `fission_tasks` the checks, the plain tasks
and the values; `fission_scope` the workflows being built and the names expressions see;
`fission_expr` the JavaScript → CEL translation.
"""

from __future__ import annotations

from typing import Any

from actorflow.definitions.convert import ConvertOptions, NativeDocument
from actorflow.definitions.convert.fission_expr import (
    Cel,
    cel_literal,
    cel_string,
    truthy,
)
from actorflow.definitions.convert.fission_scope import (
    BUILTINS,
    Ctx,
    Env,
    Flow,
    RefusedError,
    TaskInfo,
    as_int,
    input_map,
    is_task,
    is_workflow,
    slug,
    when_of,
    workflow_name,
    wrap,
)
from actorflow.definitions.convert.fission_tasks import TaskConverter
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.yaml_source import FieldPath, SourceDocument


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


class _Converter(TaskConverter):
    """The core, with Fission's control-flow functions."""

    def task_if(self, c: Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        ipath = (*path, "inputs")
        if "if" not in values:
            raise RefusedError(ipath, "if needs an if input: the condition")
        cond_id = f"{nid}__if"
        node = self.base(cond_id, when, needs)
        node["value"] = wrap(truthy(self.cel_of(values["if"], (*ipath, "if"), env)))
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
        node["value"] = wrap(f"{chosen} ? {picks[0]} : {picks[1]}")
        self.add(flow, node, path)

    def task_switch(self, c: Ctx) -> None:
        flow, _tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        ipath = (*path, "inputs")
        if "switch" not in values:
            raise RefusedError(ipath, "switch needs a switch input: the value to match")
        cases = values.get("cases") or []
        if not isinstance(cases, list):
            raise RefusedError((*ipath, "cases"), "cases must be a list of {case, action}")
        key_id = f"{nid}__switch"
        node = self.base(key_id, when, needs)
        node["value"] = wrap(self.cel_of(values["switch"], (*ipath, "switch"), env).text)
        self.add(flow, node, (*path, "inputs", "switch"))
        key = f"nodes.{key_id}.output"
        seen: list[str] = []
        branches: list[str] = []
        arms: list[tuple[str, str]] = []
        for i, case in enumerate(cases):
            cpath = (*ipath, "cases", i)
            if not isinstance(case, dict) or not isinstance(case.get("case"), str):
                raise RefusedError(cpath, "a case is {case: <string>, action: <value or task>}")
            if case["case"] in seen:
                raise RefusedError((*cpath, "case"), f"duplicate case {case['case']!r}")
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
        node["value"] = wrap(chain)
        self.add(flow, node, path)

    def branch(
        self,
        c: Ctx,
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
        if is_task(value):
            if not self.check_task(value, path):
                return "null"  # reported
            flow.tasks.setdefault(nid, self.info(flow, nid, value, path))
            self.task(c.flow, c.tid, value, path, when=when, needs=needs, nid=nid)
            branches.append(nid)
            return self.info(flow, nid, value, path).output
        if is_workflow(value):
            raise RefusedError(
                path,
                "an inline workflow as a branch is not converted: wrap it in "
                "a noop task ({run: noop, inputs: {default: <workflow>}})",
            )
        return self.cel_of(value, path, env).text

    def task_foreach(self, c: Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        ipath = (*path, "inputs")
        key = "foreach" if "foreach" in values else "default"
        if key not in values:
            raise RefusedError(ipath, "foreach needs a foreach input: the list")
        body = values.get("do")
        if not is_task(body):
            raise RefusedError((*ipath, "do"), "foreach needs do: the task run for each item")
        sequential = values.get("sequential", False)
        collect = values.get("collect", True)
        for flag, given in (("sequential", sequential), ("collect", collect)):
            if not isinstance(given, bool):
                raise RefusedError((*ipath, flag), f"{flag} must be true or false")
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
            workflow=f"{child.name}@1", forEach=wrap(items.text), inputs={"_item": wrap("item")}
        )
        self.add(flow, node, path)
        node = self.base(nid, when, [each])
        node["value"] = wrap(f"nodes.{each}.output.map(o, o.output)" if collect else "null")
        self.add(flow, node, path)

    def sequential_foreach(self, c: Ctx, items: Cel, body: Any, collect: bool) -> None:
        """One item after the other: a sub-workflow runs the body on item `_index` and then
        itself on the next, gathering the outputs in `_acc`."""
        flow, tid, nid, _inputs, path, _env, when, needs = c.unpack()
        dpath = (*path, "inputs", "do")
        child = self.new_flow(
            self.unique_name(slug(f"{flow.name}--{tid}")),
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
            "when": wrap(go),
            "workflow": f"{child.name}@1",
            "inputs": {
                "_items": wrap("inputs._items"),
                "_index": wrap("inputs._index + 1"),
                "_acc": wrap(f"inputs._acc + [{do.output}]"),
            },
        }
        self.add(child, again, dpath)
        child.outputs["output"] = wrap(f"{go} ? nodes.next.output.output : inputs._acc")
        loop = f"{nid}__loop"
        node = self.base(loop, when, needs)
        node.update(
            workflow=f"{child.name}@1",
            inputs={"_items": wrap(items.text), "_index": 0, "_acc": []},
        )
        self.add(flow, node, path)
        node = self.base(nid, when, [loop])
        node["value"] = wrap(f"nodes.{loop}.output.output" if collect else "null")
        self.add(flow, node, path)

    def task_repeat(self, c: Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        ipath = (*path, "inputs")
        body = values.get("do")
        if "times" not in values:
            raise RefusedError(ipath, "repeat needs times: how many times to run do")
        if not is_task(body):
            raise RefusedError((*ipath, "do"), "repeat needs do: the task to repeat")
        times_id = f"{nid}__times"
        node = self.base(times_id, when, needs)
        node["value"] = as_int(self.cel_of(values["times"], (*ipath, "times"), env))
        self.add(flow, node, (*path, "inputs", "times"))
        first = self.initial_prev(flow, tid, body, (*ipath, "do"))
        child = self.body_flow(
            flow, tid, body, (*ipath, "do"), variables={"_prev": None, "_times": 1}, what="repeat"
        )
        do = child.tasks["do"]
        again = self.base("next", [], ["do"])
        again["when"] = wrap("inputs._times > 1")
        again.update(
            workflow=f"{child.name}@1",
            inputs={"_prev": wrap(do.output), "_times": wrap("inputs._times - 1")},
        )
        self.add(child, again, (*ipath, "do"))
        child.outputs["output"] = wrap(
            f"nodes.next.output != null ? nodes.next.output.output : {do.output}"
        )
        loop = f"{nid}__loop"
        node = self.base(loop, when, [times_id])
        node["when"] = when_of([*when, f"nodes.{times_id}.output > 0"])
        node.update(
            workflow=f"{child.name}@1",
            inputs={"_prev": wrap(first), "_times": wrap(f"nodes.{times_id}.output")},
        )
        self.add(flow, node, path)
        node = self.base(nid, when, [times_id, loop])
        node["value"] = wrap(f"nodes.{loop}.output != null ? nodes.{loop}.output.output : null")
        self.add(flow, node, path)

    def task_while(self, c: Ctx) -> None:
        flow, tid, nid, inputs, path, env, when, needs = c.unpack()
        values = input_map(inputs)
        ipath = (*path, "inputs")
        body = values.get("do")
        for key in ("expr", "limit"):
            if key not in values:
                raise RefusedError(ipath, f"while needs {key}")
        if not is_task(body):
            raise RefusedError((*ipath, "do"), "while needs do: the task to run while expr holds")
        limit = self.cel_of(values["limit"], (*ipath, "limit"), env)
        first = self.initial_prev(flow, tid, body, (*ipath, "do"))
        child = self.new_flow(
            self.unique_name(slug(f"{flow.name}--{tid}")),
            ipath,
            loop_vars=frozenset({"_prev", "_count", "_limit"}),
            scope_note="(a while loop's body runs as a sub-workflow and sees only its own inputs)",
        )
        child.inputs["_prev"] = {"type": "any", "default": None}
        child.inputs["_count"] = {"type": "integer", "default": 0}
        child.inputs["_limit"] = {"type": "integer", "default": 0}
        cond_env = Env(self, child, tid, {**input_map(inputs), "_prev": None})
        node: dict[str, Any] = {
            "id": "cond",
            "value": wrap(truthy(self.cel_of(values["expr"], (*ipath, "expr"), cond_env))),
        }
        self.add(child, node, (*ipath, "expr"))
        go = "nodes.cond.output && inputs._count <= inputs._limit"
        over = {
            "id": "limit",
            "needs": ["cond"],
            "fail": "while limit exceeded",
            "when": wrap("nodes.cond.output && inputs._count > inputs._limit"),
        }
        self.add(child, over, (*ipath, "limit"))
        self.body_task(child, tid, body, (*ipath, "do"), when=[go], needs=["cond"])
        do = child.tasks["do"]
        again = {
            "id": "next",
            "needs": ["do"],
            "when": wrap(go),
            "workflow": f"{child.name}@1",
            "inputs": {
                "_prev": wrap(do.output),
                "_count": wrap("inputs._count + 1"),
                "_limit": wrap("inputs._limit"),
            },
        }
        self.add(child, again, (*ipath, "do"))
        child.outputs["output"] = wrap(
            "nodes.cond.output ? nodes.next.output.output : inputs._prev"
        )
        node = self.base(nid, when, needs)
        node.update(
            workflow=f"{child.name}@1",
            inputs={"_prev": wrap(first), "_count": 0, "_limit": as_int(limit)},
        )
        self.add(flow, node, path)

    # --- loop bodies --------------------------------------------------------------------

    def body_flow(
        self,
        flow: Flow,
        tid: str,
        body: Any,
        path: FieldPath,
        *,
        variables: dict[str, Any],
        what: str,
    ) -> Flow:
        """A sub-workflow running `body` as its node `do`, with loop variables as inputs."""
        child = self.new_flow(
            self.unique_name(slug(f"{flow.name}--{tid}")),
            path,
            loop_vars=frozenset(variables),
            scope_note=f"(a {what} body runs as a sub-workflow and sees only its own inputs)",
        )
        for key, default in variables.items():
            kind = "integer" if isinstance(default, int) else "any"
            child.inputs[key] = {"type": kind, "default": default}
        self.body_task(child, tid, body, path, when=[], needs=[])
        child.outputs.setdefault("output", wrap(child.tasks["do"].output))
        return child

    def body_task(
        self,
        child: Flow,
        tid: str,
        body: Any,
        path: FieldPath,
        *,
        when: list[str],
        needs: list[str],
    ) -> None:
        if not self.check_task(body, path):
            child.tasks["do"] = TaskInfo("do", "null", "{}", None, path)  # reported
            return
        if body.get("requires"):
            raise RefusedError((*path, "requires"), "a loop body has no requires (it runs alone)")
        child.tasks["do"] = self.info(child, "do", body, path)
        self.task(child, tid, body, path, when=when, needs=needs, nid="do")

    def initial_prev(self, flow: Flow, tid: str, body: Any, path: FieldPath) -> str:
        """`_prev` of the first iteration: the body's own `_prev` input, else null."""
        given = input_map(body.get("inputs")).get("_prev")
        if given is None:
            return "null"
        env = Env(self, flow, tid, body.get("inputs"))
        return self.cel_of(given, (*path, "inputs", "_prev"), env).text


__all__ = ["BUILTINS", "convert", "workflow_name"]
