"""Fission's JavaScript expressions → CEL: the parser, the translation of each construct,
and a Hypothesis property that translated expressions evaluate as JavaScript would. No
Ray, no NATS."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorflow.definitions.convert.fission_expr import Cel, JsError, parse, to_cel
from actorflow.definitions.expressions import Expression


class _Env:
    """Tasks A and B, invocation inputs, current-task inputs and one variable."""

    def task_field(self, task: str, field: str, pos: int) -> Cel:
        if task not in ("A", "B"):
            raise JsError(f"unknown task {task!r}", pos)
        return Cel(
            {"Output": f"nodes.{task}.output", "Status": f"nodes.{task}.status"}.get(field, "{}")
        )

    def current_input(self, key: str | None, pos: int) -> Cel:
        return Cel("inputs" if key is None else f"inputs.{key}")

    def invocation_input(self, key: str | None, pos: int) -> Cel:
        return Cel("inputs" if key is None else f"inputs.{key}")

    def variable(self, name: str, pos: int) -> Cel:
        if name == "x":
            return Cel("(vars.x)")
        raise JsError(f"unknown name {name!r}", pos)


def cel(js: str) -> str:
    return to_cel(parse(js), _Env()).text


def run(js: str, **context: Any) -> Any:
    return Expression.compile(cel(js)).evaluate(context)


@pytest.mark.parametrize(
    ("js", "expected"),
    [
        ("$.Tasks.A.Output", "nodes.A.output"),
        ("output('A')", "nodes.A.output"),
        ("$.Tasks.A.Output.title", "nodes.A.output.title"),
        ("$.Tasks['A'].Output", "nodes.A.output"),
        ("$.Tasks.B.Status", "nodes.B.status"),
        ("$.Invocation.Inputs.default", "inputs.default"),
        ("$.Invocation.Inputs", "inputs"),
        ("param()", "inputs.default"),
        ("param('body')", "inputs.body"),
        ("task().Inputs._item * 10", "(inputs._item * 10)"),
        ("$.Invocation.Inputs.default.length < 20", "(size(inputs.default) < 20)"),
        ("'a' + output('A')", '("a" + string(nodes.A.output))'),
        ("1 / 2", "(double(1) / double(2))"),
        ("x.fn1 === 2", "((vars.x).fn1 == 2)"),
        ("a_b" if False else "{'k': 1, \"q\": [true, null]}", '{"k": 1, "q": [true, null]}'),
        ("param().trim().toUpperCase()", "inputs.default.trim().upperAscii()"),
    ],
)
def test_each_construct_has_its_cel(js: str, expected: str) -> None:
    assert cel(js) == expected


def test_or_is_a_default_and_guards_a_missing_property() -> None:
    assert run("param('headers').Prefix || 'none'", inputs={"headers": {}}) == "none"
    assert run("param('headers').Prefix || 'none'", inputs={"headers": {"Prefix": "P"}}) == "P"
    assert run("(output('A') || {}).fn2 || 0", nodes={"A": {"output": None}}) == 0
    assert run("(output('A') || {}).fn2 || 0", nodes={"A": {"output": {"fn2": 3}}}) == 3


def test_truthiness_follows_javascript() -> None:
    for value, expected in [(None, True), (0, True), ("", True), ("a", False), (5, False)]:
        assert run("!param()", inputs={"default": value}) is expected
    assert run("!!$.Tasks.A.Output.image", nodes={"A": {"output": {"title": "t"}}}) is False
    assert run("param() ? 'yes' : 'no'", inputs={"default": [1]}) == "yes"
    assert run("param() && 'then'", inputs={"default": 0}) == 0


def test_string_methods_run_with_the_string_extension() -> None:
    city = "{$.Invocation.Inputs.default.substring(0, $.Invocation.Inputs.default.indexOf(','))}"
    js = city[1:-1] + ".trim()"
    assert run(js, inputs={"default": "San Francisco , CA"}) == "San Francisco"


@pytest.mark.parametrize(
    ("js", "message"),
    [
        ("function() { return 1 }", "function body cannot be converted"),
        ("(x) => x", "arrow functions"),
        ("a = 1", "assignments"),
        ("1; 2", "statements"),
        ("new Date()", "'new' is not converted"),
        ("output('Z')", "unknown task 'Z'"),
        ("y + 1", "unknown name 'y'"),
        ("$.Workflow.Id", "$.Workflow has no native counterpart"),
        ("param().replace('a', 'b')", "replace() has no CEL translation"),
        ("1 +", "ends too early"),
        ("(1 + 2", "expected ')'"),
        ("`x`", "template literals"),
        ("uid()", "uid() has no native counterpart"),
    ],
)
def test_what_has_no_translation_is_refused_with_what_to_do(js: str, message: str) -> None:
    with pytest.raises(JsError) as caught:
        cel(js)
    assert message in str(caught.value)


def test_a_refusal_says_the_column() -> None:
    with pytest.raises(JsError) as caught:
        cel("1 + new X()")
    assert caught.value.pos == 4
    assert "(column 5)" in str(caught.value)


# --- the property: CEL of a translated expression evaluates as JavaScript does -------------


def _truthy(v: Any) -> bool:
    return v not in (None, False, 0, "")


def _js(tree: tuple[Any, ...]) -> Any:
    """A reference evaluator for the generated subset, with JavaScript's rules."""
    op = tree[0]
    if op == "lit":
        return tree[1]
    if op == "!":
        return not _truthy(_js(tree[1]))
    if op == "?":
        return _js(tree[2]) if _truthy(_js(tree[1])) else _js(tree[3])
    left, right = _js(tree[1]), _js(tree[2])
    if op == "||":
        return left if _truthy(left) else right
    if op == "&&":
        return right if _truthy(left) else left
    if op == "+":
        if isinstance(left, str) or isinstance(right, str):
            return _js_str(left) + _js_str(right)
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "<":
        return left < right
    if op == "===":
        return left == right and type(left) is type(right)
    raise AssertionError(op)


def _js_str(v: Any) -> str:
    return {True: "true", False: "false"}.get(v, str(v)) if isinstance(v, bool) else str(v)


def _source(tree: tuple[Any, ...]) -> str:
    op = tree[0]
    if op == "lit":
        v = tree[1]
        if isinstance(v, str):
            return "'" + v + "'"
        if v is None:
            return "null"
        return {True: "true", False: "false"}.get(v, str(v)) if isinstance(v, bool) else str(v)
    if op == "!":
        return f"!({_source(tree[1])})"
    if op == "?":
        return f"({_source(tree[1])} ? {_source(tree[2])} : {_source(tree[3])})"
    return f"({_source(tree[1])} {op} {_source(tree[2])})"


_ints = st.integers(min_value=-50, max_value=50).map(lambda i: ("lit", i))
_strs = st.text(alphabet="abc ", max_size=3).map(lambda s: ("lit", s))
_num_expr = st.recursive(
    _ints,
    lambda inner: st.tuples(st.sampled_from(["+", "-", "*"]), inner, inner),
    max_leaves=6,
)
_str_expr = st.recursive(
    _strs | st.tuples(st.just("+"), _strs, _num_expr),
    lambda inner: st.tuples(st.just("+"), inner, inner | _num_expr),
    max_leaves=5,
)
_values = _num_expr | _str_expr | st.just(("lit", None))
_any_expr = st.recursive(
    _values,
    lambda inner: (
        st.tuples(st.sampled_from(["||", "&&"]), inner, inner)
        | st.tuples(st.just("?"), inner, inner, inner)
        | st.tuples(st.just("!"), inner)
        | st.tuples(st.just("<"), _num_expr, _num_expr)
        | st.tuples(st.just("==="), _str_expr, _str_expr)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(_any_expr)
def test_translated_expressions_evaluate_as_javascript_does(tree: tuple[Any, ...]) -> None:
    js = _source(tree)
    assert run(js) == _js(tree), (js, cel(js))
