"""Definitions built to hurt are refused with one clear issue, never a hang, a bare
RecursionError or a crash: alias bombs, deep nesting, giant expressions, binary bytes,
huge texts — through the native loader and the converters alike."""

from __future__ import annotations

import pytest

from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.expressions import MAX_EXPRESSION_LENGTH
from actorflow.definitions.loader import load_text
from actorflow.definitions.yaml_source import MAX_DEPTH, MAX_NODES, MAX_TEXT

HEAD = "apiVersion: actorflow/v1\nkind: Workflow\nmetadata: {name: w}\n"


def _laughs(levels: int) -> str:
    """The classic bomb: each level ten aliases of the one before."""
    lines = ["    - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"    - &a{i} [{refs}]")
    return HEAD + "spec:\n  nodes:\n  - id: a\n    value:\n" + "\n".join(lines) + "\n"


def _issue(text: str, file: str = "hostile.yaml") -> str:
    with pytest.raises(DefinitionError) as err:
        load_text(text, file=file)
    return str(err.value)


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    message = _issue(_laughs(9))  # a billion values, in 600 bytes
    assert f"expands to more than {MAX_NODES} values" in message
    assert message.startswith("hostile.yaml:")


def test_a_few_aliases_are_still_fine() -> None:
    (wf,) = load_text(_laughs(3).replace("spec:", "spec:\n  outputs: {}", 1), file="ok.yaml")
    assert wf.spec.nodes[0].value is not None


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "1" + "}" * 3000,
        "".join(f"\n{'  ' * (i + 1)}k{i}:" for i in range(MAX_DEPTH + 5)) + " 1",
    ],
    ids=["flow-lists", "flow-maps", "block-maps"],
)
def test_deep_nesting_is_refused_not_recursed_over(body: str) -> None:
    assert f"nested deeper than {MAX_DEPTH} levels" in _issue(HEAD + "spec: " + body + "\n")


def test_a_recursive_alias_is_refused() -> None:
    assert "nested deeper" in _issue(HEAD + "spec: &s\n  nodes: [*s]\n")


def test_a_giant_expression_is_refused_before_cel_parses_it() -> None:
    expr = "1 + " * 50_000 + "1"  # enough to overflow the native parser's stack
    text = HEAD + f'spec:\n  nodes:\n  - id: a\n    value: "${{{{ {expr} }}}}"\n'
    message = _issue(text)
    assert f"longer than {MAX_EXPRESSION_LENGTH} characters" in message
    assert len(message) < 2000  # the expression is not quoted whole


@pytest.mark.parametrize("junk", ["\x00", "\x01\x02", "\ufffe"])
def test_binary_bytes_are_refused_at_their_line(junk: str) -> None:
    message = _issue(HEAD.replace("kind: Workflow", f"kind: Workflow{junk}"))
    assert message.startswith("hostile.yaml:2: not YAML text")


def test_a_huge_text_is_refused_without_parsing() -> None:
    text = HEAD + "# " + "x" * MAX_TEXT + "\n"
    assert "too large" in _issue(text)


def test_an_argo_bomb_is_refused_like_a_native_one() -> None:
    lines = ["  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        lines.append(f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: b}\n"
        "spec:\n  entrypoint: main\n  x:\n" + "\n".join(lines) + "\n"
    )
    assert "expands to more than" in _issue(text, "argo.yaml")


def test_a_graph_edit_refuses_a_bomb_and_changes_nothing() -> None:
    from actorflow.definitions.edit import add_dependency

    text = _laughs(9)
    with pytest.raises(DefinitionError, match="expands to more than"):
        add_dependency(text, "a", "b")
    with pytest.raises(DefinitionError, match=r"nesting depth|nested deeper"):
        add_dependency(HEAD + "spec: " + "[" * 100_000 + "]" * 100_000 + "\n", "a", "b")
