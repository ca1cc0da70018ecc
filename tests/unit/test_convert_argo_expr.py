"""Argo's expression syntaxes (tags, govaluate `when`, expr-lang, `depends`) as CEL: the
CEL is evaluated with the CEL library the engine uses, so these pin behaviour, not text."""

from __future__ import annotations

from typing import Any

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorflow.definitions.convert.argo_expr import (
    ArgoExprError,
    expr_to_cel,
    parse_depends,
    template_text,
    when_to_cel,
)

VARS = {
    "steps.flip.outputs.result": "nodes.flip.output.result",
    "inputs.parameters.should-print": "inputs.should_print",
    "inputs.parameters.n": "inputs.n",
    "workflow.parameters.json": "inputs.json",
    "tasks.flip-coin.outputs.result": "nodes.flip_coin.output.result",
}


def resolve(path: list[str]) -> str:
    key = ".".join(path)
    if key not in VARS:
        raise ArgoExprError(f"unknown variable {key!r}")
    return VARS[key]


def run(text: str, context: dict[str, Any], translate: Any = when_to_cel) -> Any:
    return cel.evaluate(translate(text, resolve), context)


def ctx(result: str = "heads", should_print: str = "true", n: str = "5") -> dict[str, Any]:
    return {
        "nodes": {
            "flip": {"output": {"result": result}},
            "flip_coin": {"output": {"result": result}},
        },
        "inputs": {"should_print": should_print, "n": n, "json": [{"value": "true"}]},
    }


@pytest.mark.parametrize(
    ("when", "result", "expected"),
    [
        ("{{steps.flip.outputs.result}} == heads", "heads", True),
        ("{{steps.flip.outputs.result}} == heads", "tails", False),
        ("{{steps.flip.outputs.result}} != heads", "tails", True),
        ("'{{steps.flip.outputs.result}}' == 'heads'", "heads", True),
        ("{{steps.flip.outputs.result}} =~ '^he'", "heads", True),
        ("{{steps.flip.outputs.result}} =~ '^he'", "tails", False),
        ("{{steps.flip.outputs.result}} !~ 'ta.*'", "tails", False),
        (
            "{{steps.flip.outputs.result}} == heads || {{steps.flip.outputs.result}} == tails",
            "tails",
            True,
        ),
        ("!({{steps.flip.outputs.result}} == heads)", "heads", False),
        ("({{steps.flip.outputs.result}} == heads) && {{inputs.parameters.n}} > 3", "heads", True),
        ("{{inputs.parameters.n}} < 3", "heads", False),
        ("{{inputs.parameters.n}} >= 5", "heads", True),
        ("{{inputs.parameters.should-print}} == true", "heads", True),
        ("{{inputs.parameters.should-print}}", "heads", True),
    ],
)
def test_govaluate_conditions_compare_substituted_text(
    when: str, result: str, expected: bool
) -> None:
    assert run(when, ctx(result)) is expected


def test_expression_tags_are_expr_lang() -> None:
    when = "{{= inputs.parameters[\"should-print\"] == 'true'}}"
    assert run(when, ctx()) is True
    assert run(when, ctx(should_print="false")) is False
    jsonpath = "{{=jsonpath(workflow.parameters.json, '$[0].value') == 'true'}}"
    assert run(jsonpath, ctx()) is True
    ternary = "tasks['flip-coin'].outputs.result == 'heads' ? 'H' : 'T'"
    assert run(ternary, ctx("tails"), expr_to_cel) == "T"
    assert run("asInt(inputs.parameters.n) + 1 > 5 and not false", ctx(), expr_to_cel) is True


def test_text_tags_become_native_templates() -> None:
    assert template_text("echo {{inputs.parameters.n}}!", resolve) == "echo ${{ inputs.n }}!"
    assert template_text("{{ steps.flip.outputs.result }}", resolve) == (
        "${{ nodes.flip.output.result }}"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{steps.nope.outputs.result}} == x", "unknown variable"),
        ("{{steps.flip.outputs.result}} == ", "ends too early"),
        ("({{steps.flip.outputs.result}} == heads", "not closed"),
        ("{{= sprig.upper(inputs.parameters.n) }}", "unknown name"),
        ("{{= foo(1) }}", "no CEL counterpart"),
    ],
)
def test_what_does_not_parse_says_why(text: str, reason: str) -> None:
    with pytest.raises(ArgoExprError, match=reason):
        when_to_cel(text, resolve)


STATUSES = ("SUCCEEDED", "FAILED", "SKIPPED")
ARGO_RESULTS = {
    "": ("SUCCEEDED", "SKIPPED"),
    ".Succeeded": ("SUCCEEDED",),
    ".Failed": ("FAILED",),
    ".Errored": ("FAILED",),
    ".Skipped": ("SKIPPED",),
}


def _depends(draw: Any, depth: int = 0) -> tuple[str, Any]:
    """A random `depends` text and a Python function giving Argo's verdict on statuses."""
    kind = draw(st.sampled_from(["leaf", "leaf", "and", "or", "not"] if depth < 3 else ["leaf"]))
    if kind == "leaf":
        task = draw(st.sampled_from(["A", "B", "c-1"]))
        result = draw(st.sampled_from(sorted(ARGO_RESULTS)))
        return f"{task}{result}", lambda s: s[task] in ARGO_RESULTS[result]
    if kind == "not":
        text, f = _depends(draw, depth + 1)
        return f"!({text})", lambda s: not f(s)
    (lt, lf), (rt, rf) = _depends(draw, depth + 1), _depends(draw, depth + 1)
    op = "&&" if kind == "and" else "||"
    if kind == "and":
        return f"({lt} && {rt})", lambda s: lf(s) and rf(s)
    return f"({lt} {op} {rt})", lambda s: lf(s) or rf(s)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_depends_gives_argos_verdict_for_every_outcome(data: st.DataObject) -> None:
    text, verdict = _depends(data.draw)
    statuses = {t: data.draw(st.sampled_from(STATUSES)) for t in ("A", "B", "c-1")}
    parsed = parse_depends(text, lambda t: f"nodes['{t}'].status")
    nodes = {t: {"status": s} for t, s in statuses.items()}
    assert cel.evaluate(parsed.cel, {"nodes": nodes}) is verdict(statuses)
    assert set(parsed.tasks) <= {"A", "B", "c-1"}


def test_depends_plain_conjuncts_are_the_tasks_that_must_not_fail() -> None:
    parsed = parse_depends("A && (B.Failed || C.Skipped)", lambda t: t)
    assert parsed.tasks == ["A", "B", "C"]
    assert parsed.plain == ["A"]
    assert parse_depends("A || B", lambda t: t).plain == []
    assert parse_depends("A && B.Succeeded", lambda t: t).plain == ["A", "B"]
    with pytest.raises(ArgoExprError, match="unknown task result"):
        parse_depends("A.Finished", lambda t: t)
    with pytest.raises(ArgoExprError):
        parse_depends("A && ", lambda t: t)
