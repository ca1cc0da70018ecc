"""Safe expressions: CEL, compiled once at apply time, never Python `eval`.

A value in a definition is a literal unless it is a string holding ``${{ expr }}``.
A string that is exactly one expression yields the expression's typed value
(``"${{ inputs.n * 2 }}"`` → ``4``); expressions embedded in a longer string are rendered
as text (``"part-${{ index }}"`` → ``"part-3"``). Lists and maps are walked recursively.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import cel
from cel.stdlib import EXTENSIONS

from actorflow.definitions.errors import ExpressionError

#: CEL's string extension functions (cel-go's `strings` library: `substring`, `indexOf`,
#: `trim`, `split`, `lowerAscii` …), available to every expression; an expression that
#: calls none of them is evaluated without them, at no cost.
STRING_FUNCTIONS: Final[Mapping[str, Callable[..., Any]]] = EXTENSIONS["strings"]
_EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_NODE_DOT = re.compile(r"\bnodes\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_NODE_INDEX = re.compile(r"\bnodes\s*\[\s*['\"]([^'\"]+)['\"]\s*\]")
_NODES_WORD = re.compile(r"\bnodes\b")
_INPUT_DOT = re.compile(r"(?<![.\w])inputs\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")  # not `step.inputs`


def strip_braces(source: str) -> str:
    """A single expression may be written bare or wrapped: ``${{ x > 1 }}`` → ``x > 1``."""
    whole = _EXPR.fullmatch(source.strip())
    return whole.group(1) if whole else source


MAX_EXPRESSION_LENGTH = 8192
"""Longer expressions are refused before CEL parses them (its native parser can overflow
its stack on a few hundred thousand characters); no real condition comes near."""


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and _EXPR.search(value) is not None


@dataclass(frozen=True)
class Expression:
    """One compiled CEL expression and the names it reads."""

    source: str
    program: Any

    @classmethod
    def compile(cls, source: str, *, field: str | None = None) -> Expression:
        text = source.strip()
        if not text:
            raise ExpressionError(source, "empty expression", field=field)
        if len(text) > MAX_EXPRESSION_LENGTH:  # the CEL parser's stack is not ours to risk
            raise ExpressionError(
                text,
                f"longer than {MAX_EXPRESSION_LENGTH} characters: compute it in a step",
                field=field,
            )
        try:
            return cls(text, _program(text))
        except Exception as exc:  # cel raises plain ValueError / RuntimeError subclasses
            raise ExpressionError(text, _reason(exc), field=field) from exc

    @property
    def node_refs(self) -> set[str]:
        return set(_NODE_DOT.findall(self.source)) | set(_NODE_INDEX.findall(self.source))

    @property
    def input_refs(self) -> set[str]:
        return set(_INPUT_DOT.findall(self.source))

    def evaluate(self, context: Mapping[str, Any], *, field: str | None = None) -> Any:
        try:
            narrowed: Any = self._narrowed(context)
            if self._extensions:
                narrowed = cel.Context(variables=narrowed, functions=self._extensions)
            return _plain(self.program.execute(narrowed))
        except Exception as exc:
            raise ExpressionError(self.source, _reason(exc), field=field) from exc

    @functools.cached_property
    def _extensions(self) -> dict[str, Callable[..., Any]]:
        """The string extension functions this expression calls (usually none)."""
        used = set(self.program.functions())
        return {name: fn for name, fn in STRING_FUNCTIONS.items() if name in used}

    def _narrowed(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The context with only the nodes this expression names: the CEL library converts
        the whole context on every call, and a run's `nodes` grows with the run. (An
        expression that indexes `nodes` by a computed key sees them all.)"""
        out = dict(context)
        nodes = out.get("nodes")
        refs = self._static_node_refs
        if isinstance(nodes, dict) and refs is not None and len(refs) < len(nodes):
            out["nodes"] = {r: nodes[r] for r in refs if r in nodes}
        return out

    @functools.cached_property
    def _static_node_refs(self) -> frozenset[str] | None:
        """The nodes read, when every mention of `nodes` names one (else None)."""
        mentions = len(_NODES_WORD.findall(self.source))
        named = len(_NODE_DOT.findall(self.source)) + len(_NODE_INDEX.findall(self.source))
        return frozenset(self.node_refs) if mentions == named else None


@dataclass(frozen=True)
class Template:
    """A JSON value with expressions inside, compiled; `render` fills it from a context."""

    value: Any
    expressions: tuple[Expression, ...]
    field: str | None = None

    @classmethod
    def compile(cls, value: Any, *, field: str | None = None) -> Template:
        found: list[Expression] = []
        _walk_compile(value, found, field)
        return cls(value, tuple(found), field)

    @property
    def is_literal(self) -> bool:
        return not self.expressions

    @property
    def node_refs(self) -> set[str]:
        return set().union(*(e.node_refs for e in self.expressions))

    @property
    def input_refs(self) -> set[str]:
        return set().union(*(e.input_refs for e in self.expressions))

    def render(self, context: Mapping[str, Any]) -> Any:
        if self.is_literal:
            return self.value
        compiled = {e.source: e for e in self.expressions}
        return _walk_render(self.value, compiled, context, self.field)


@functools.lru_cache(maxsize=4096)
def _program(text: str) -> Any:
    """A run's plan is compiled where the run starts and again by its driver, for every
    run: the same sources, parsed once per process. (Programs are immutable.)"""
    return cel.compile(text)


def _walk_compile(value: Any, out: list[Expression], field: str | None) -> None:
    if isinstance(value, str):
        for match in _EXPR.finditer(value):
            out.append(Expression.compile(match.group(1), field=field))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk_compile(item, out, f"{field}[{i}]" if field else f"[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_compile(item, out, f"{field}.{key}" if field else str(key))


def _walk_render(
    value: Any, compiled: Mapping[str, Expression], ctx: Mapping[str, Any], field: str | None
) -> Any:
    if isinstance(value, str):
        whole = _EXPR.fullmatch(value.strip())
        if whole and "${{" not in whole.group(1):  # not "${{ a }}-${{ b }}", which is text
            return compiled[whole.group(1).strip()].evaluate(ctx, field=field)

        def text(m: re.Match[str]) -> str:
            result = compiled[m.group(1).strip()].evaluate(ctx, field=field)
            return result if isinstance(result, str) else json.dumps(result)

        return _EXPR.sub(text, value)
    if isinstance(value, list):
        return [_walk_render(v, compiled, ctx, field) for v in value]
    if isinstance(value, dict):
        return {k: _walk_render(v, compiled, ctx, field) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    """CEL returns tuples for lists and may return bytes; normalise to JSON-shaped values."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such key {exc}"
    return " ".join(str(exc).split()) or type(exc).__name__
