"""CEL templates: compile once, know what they read, render typed values."""

from __future__ import annotations

import pytest

from actorflow.definitions.errors import DefinitionError, ExpressionError
from actorflow.definitions.expressions import Expression, Template, is_expression


def test_literal_values_render_unchanged() -> None:
    value = {"a": [1, "two", None], "b": {"c": True}}
    template = Template.compile(value)
    assert template.is_literal
    assert template.render({}) is value
    assert not is_expression("plain ${ not } one")


def test_a_whole_expression_keeps_its_type() -> None:
    template = Template.compile("${{ inputs.n * 2 }}")
    assert template.render({"inputs": {"n": 2}}) == 4
    assert Template.compile("${{ [1, 2] }}").render({}) == [1, 2]


def test_embedded_expressions_render_as_text() -> None:
    template = Template.compile("part-${{ index }}-${{ item.name }}-${{ [1] }}")
    assert template.render({"index": 3, "item": {"name": "x"}}) == "part-3-x-[1]"


def test_nested_values_are_walked() -> None:
    template = Template.compile({"a": ["${{ inputs.x }}", "lit"], "b": {"c": "${{ 1 + 1 }}"}})
    assert template.render({"inputs": {"x": "y"}}) == {"a": ["y", "lit"], "b": {"c": 2}}


def test_references() -> None:
    template = Template.compile(
        ["${{ nodes.a.output + nodes['b'].output }}", "${{ inputs.url + inputs . n }}"]
    )
    assert template.node_refs == {"a", "b"}
    assert template.input_refs == {"url", "n"}
    assert Expression.compile("1").node_refs == set()


def test_compile_errors_name_the_field() -> None:
    with pytest.raises(ExpressionError) as info:
        Template.compile({"x": ["ok", "${{ 1 + }}"]}, field="spec.nodes[0].inputs")
    err = info.value
    assert isinstance(err, DefinitionError)
    assert err.expression == "1 +"
    (issue,) = err.issues
    assert issue.field == "spec.nodes[0].inputs.x[1]"
    assert issue.message.startswith("expression '1 +': ")


def test_empty_expression_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="empty expression"):
        Template.compile("${{   }}")


def test_evaluation_errors_are_expression_errors() -> None:
    template = Template.compile("${{ inputs.missing + 1 }}", field="spec.outputs.o")
    with pytest.raises(ExpressionError) as info:
        template.render({"inputs": {}})
    assert info.value.issues[0].field == "spec.outputs.o"


def test_an_expression_sees_the_nodes_it_names_and_a_computed_key_sees_all() -> None:
    context = {
        "inputs": {"which": "b"},
        "nodes": {"a": {"output": 1}, "b": {"output": 2}, "c": {"output": 3}},
    }
    named = Expression.compile("nodes.a.output + nodes['c'].output")
    assert named.evaluate(context) == 4
    assert set(named._narrowed(context)["nodes"]) == {"a", "c"}
    computed = Expression.compile("nodes[inputs.which].output")
    assert computed.evaluate(context) == 2
    assert computed._narrowed(context)["nodes"] == context["nodes"]
    quoted = Expression.compile("size(nodes) > 2 && 'nodes' != ''")
    assert quoted.evaluate(context) is True


def test_a_string_that_starts_and_ends_with_expressions_is_text() -> None:
    template = Template.compile("${{ inputs.a }}-${{ inputs.b }}")
    assert template.render({"inputs": {"a": "x", "b": 2}}) == "x-2"
