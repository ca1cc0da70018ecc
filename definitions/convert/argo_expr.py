"""Argo's expression syntaxes as CEL — pure string work, no Ray, no NATS.

Argo writes values three ways, and each becomes native `${{ CEL }}`:

- simple tags in text, ``"echo {{inputs.parameters.msg}}"`` → ``"echo ${{ inputs.msg }}"``;
- expression tags, ``{{= expr }}``, in expr-lang (``and``, ``?:``, ``asInt``, ``['x']``);
- `when` conditions in govaluate, evaluated by Argo *after* the tags were substituted as
  text, so bare words compare as strings (``{{steps.flip.outputs.result}} == heads``) and
  ``=~`` is a regex match;
- DAG `depends`, a boolean over task results (``A && (B.Failed || C.Skipped)``).

A variable (``steps.flip.outputs.result``) is resolved by the caller (`Resolver`), which
knows which native node a step became; this module only parses. Every parse problem is an
`ArgoExprError` whose message says what was not understood.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from actorflow.definitions.convert.argo_names import wrap

#: Resolves one Argo variable, given as its path segments (``["steps", "flip", "outputs",
#: "result"]``), to a CEL expression; raises `ArgoExprError` for an unknown one.
Resolver = Callable[[list[str]], str]

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PLACE = "\x00"
_PLAIN_STRING = re.compile(r"'([^'\\]*)'")


class ArgoExprError(ValueError):
    """An Argo expression or variable that does not parse or cannot be translated."""


def has_tags(text: str) -> bool:
    return _TAG.search(text) is not None


def split_path(path: str) -> list[str]:
    """``inputs.parameters.x`` → segments; a segment may hold ``-`` (Argo names do)."""
    parts = [p.strip() for p in path.strip().split(".")]
    if not all(parts):
        raise ArgoExprError(f"malformed variable {path!r}")
    return parts


def tag_to_cel(body: str, resolve: Resolver) -> str:
    """The CEL of one tag's body: a simple variable, or an expr-lang expression after ``=``."""
    body = body.strip()
    if body.startswith("="):
        return expr_to_cel(body[1:], resolve)
    return resolve(split_path(body))


def template_text(text: str, resolve: Resolver) -> str:
    """A string with Argo tags as a native templated string (``${{ … }}`` per tag)."""

    def sub(match: re.Match[str]) -> str:
        cel = tag_to_cel(match.group(1), resolve)
        literal = _PLAIN_STRING.fullmatch(cel)
        if literal and "${{" not in literal.group(1):  # a constant argument: its text
            return literal.group(1)
        return wrap(cel)

    return _TAG.sub(sub, text)


# --- govaluate `when` -------------------------------------------------------------------

_WHEN_TOKEN = re.compile(
    r"\s*(?:(?P<str>'[^']*'|\"[^\"]*\")|(?P<op>=~|!~|==|!=|<=|>=|&&|\|\||[<>!()])"
    r"|(?P<word>[^\s()<>=!&|'\"]+))"
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # str | op | word
    text: str


def _when_tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _WHEN_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ArgoExprError(f"cannot read {text[pos:]!r}")
        kind = m.lastgroup or "word"
        out.append(_Tok(kind, m.group(kind)))
        pos = m.end()
    return out


@dataclass(frozen=True)
class _Operand:
    """A govaluate operand: text (a word, a quoted string, a tag), a number or a boolean."""

    cel: str
    kind: str  # text | number | bool | tagged


def when_to_cel(text: str, resolve: Resolver) -> str:
    """A govaluate condition (Argo's `when`) as one CEL boolean expression.

    Tags are substituted first, as Argo does: ``{{x}} == heads`` compares the text of x
    with the text ``heads``; ``<`` and friends compare numbers; ``=~`` matches a regex.
    A whole condition written as an expression tag (``{{= … }}``) is expr-lang.
    """
    whole = _TAG.fullmatch(text.strip())
    if whole and whole.group(1).strip().startswith("="):
        return expr_to_cel(whole.group(1).strip()[1:], resolve)
    tags: list[str] = []

    def place(match: re.Match[str]) -> str:
        tags.append(tag_to_cel(match.group(1), resolve))
        return f"{_PLACE}{len(tags) - 1}{_PLACE}"

    tokens = _when_tokens(_TAG.sub(place, text))
    if not tokens:
        raise ArgoExprError("empty condition")
    parser = _WhenParser(tokens, tags)
    cel = parser.disjunction()
    if parser.pos != len(tokens):
        raise ArgoExprError(f"unexpected {tokens[parser.pos].text!r}")
    return cel


class _WhenParser:
    def __init__(self, tokens: list[_Tok], tags: list[str]) -> None:
        self.tokens, self.tags, self.pos = tokens, tags, 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise ArgoExprError("the condition ends too early")
        self.pos += 1
        return tok

    def disjunction(self) -> str:
        parts = [self.conjunction()]
        while (tok := self.peek()) is not None and tok.text == "||":
            self.take()
            parts.append(self.conjunction())
        return " || ".join(parts)

    def conjunction(self) -> str:
        parts = [self.negation()]
        while (tok := self.peek()) is not None and tok.text == "&&":
            self.take()
            parts.append(self.negation())
        return " && ".join(parts)

    def negation(self) -> str:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == "!":
            self.take()
            return f"!({self.negation()})"
        return self.comparison()

    def comparison(self) -> str:
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.take()
            inner = self.disjunction()
            closing = self.peek()
            if closing is None or closing.text != ")":
                raise ArgoExprError("a '(' is not closed")
            self.take()
            return f"({inner})"
        left = self.operand()
        op = self.peek()
        if op is None or op.kind != "op" or op.text in ("&&", "||", ")"):
            return _truthy(left)
        self.take()
        right = self.operand()
        return _compare(left, op.text, right)

    def operand(self) -> _Operand:
        tok = self.take()
        if tok.kind == "str":
            operand = self.word(tok.text[1:-1])
            return (
                operand
                if operand.kind in ("tagged", "text")
                else _Operand(_cel_string(tok.text[1:-1]), "text")
            )
        if tok.kind != "word":
            raise ArgoExprError(f"expected a value, got {tok.text!r}")
        return self.word(tok.text)

    def word(self, text: str) -> _Operand:
        pieces = re.split(f"{_PLACE}(\\d+){_PLACE}", text)
        if len(pieces) == 3 and pieces[0] == pieces[2] == "":
            return _Operand(self.tags[int(pieces[1])], "tagged")
        if len(pieces) > 1:  # text around tags: their concatenation
            parts = [
                f"string({self.tags[int(p)]})" if i % 2 else _cel_string(p)
                for i, p in enumerate(pieces)
                if p or i % 2
            ]
            return _Operand(" + ".join(parts), "text")
        if text in ("true", "false"):
            return _Operand(text, "bool")
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return _Operand(text, "number")
        return _Operand(_cel_string(text), "text")


def _as_text(o: _Operand) -> str:
    if o.kind == "tagged":
        return f"string({o.cel})"
    if o.kind in ("number", "bool"):
        return _cel_string(o.cel)
    return o.cel


def _as_number(o: _Operand) -> str:
    if o.kind == "number":
        return f"double({o.cel})"
    return f"double({_as_text(o)})"


def _compare(left: _Operand, op: str, right: _Operand) -> str:
    if op in ("==", "!="):
        if left.kind == right.kind == "number":
            return f"double({left.cel}) {op} double({right.cel})"
        if left.kind == right.kind == "bool":
            return f"{left.cel} {op} {right.cel}"
        return f"{_as_text(left)} {op} {_as_text(right)}"
    if op in ("=~", "!~"):
        match = f"{_as_text(left)}.matches({_as_text(right)})"
        return match if op == "=~" else f"!{match}"
    if op in ("<", ">", "<=", ">="):
        return f"{_as_number(left)} {op} {_as_number(right)}"
    raise ArgoExprError(f"unknown operator {op!r}")


def _truthy(o: _Operand) -> str:
    if o.kind == "bool":
        return o.cel
    return f"{_as_text(o)} == 'true'"


def _cel_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- expr-lang ({{= … }}) ---------------------------------------------------------------

_EXPR_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||\?\?|[-+*/%<>!?:()\[\].,]))"
)
_ROOTS = {"inputs", "outputs", "steps", "tasks", "workflow", "item", "retries", "lastRetry"}
_FUNCTIONS = {
    "asInt": "int",
    "asFloat": "double",
    "int": "int",
    "float": "double",
    "string": "string",
    "len": "size",
}
_WORDS = {"and": "&&", "or": "||", "not": "!", "nil": "null", "true": "true", "false": "false"}


def _expr_tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _EXPR_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ArgoExprError(f"cannot read {text[pos:]!r}")
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def expr_to_cel(text: str, resolve: Resolver) -> str:
    """An expr-lang expression (Argo's ``{{= … }}``, `depends`-free) as CEL.

    Variables (``inputs.parameters['x']``, ``tasks.a.outputs.result``) go through
    `resolve`; ``and``/``or``/``not`` become ``&&``/``||``/``!``; ``asInt``/``asFloat``
    become ``int``/``double``; ``jsonpath(x, '$.a[0]')`` with a constant path becomes a
    selection on x (which must then be JSON data, not a string). Other functions (sprig's)
    have no CEL counterpart and are refused by name.
    """
    tokens = _expr_tokens(text)
    if not tokens:
        raise ArgoExprError("empty expression")
    out: list[str] = []
    i = 0
    depth = 0
    while i < len(tokens):
        kind, tok = tokens[i]
        if kind == "name" and tok in _ROOTS and not (out and out[-1] == "."):
            segments, i = _variable(tokens, i)
            out.append(resolve(segments))
            continue
        if kind == "name" and i + 1 < len(tokens) and tokens[i + 1][1] == "(":
            if tok == "jsonpath":
                cel, i = _jsonpath(tokens, i, resolve)
                out.append(cel)
                continue
            if tok not in _FUNCTIONS:
                raise ArgoExprError(f"function {tok!r} has no CEL counterpart")
            out.append(_FUNCTIONS[tok])
        elif kind == "name" and tok in _WORDS:
            out.append(_WORDS[tok])
        elif kind == "name" and tok == "in":
            out.append(" in ")
        elif kind == "name" and tok == "matches":
            cel_left = out.pop() if out else ""
            i += 1
            if i >= len(tokens):
                raise ArgoExprError("'matches' needs a pattern")
            out.append(f"{cel_left}.matches({_literal(tokens[i])})")
        elif kind == "name":
            raise ArgoExprError(f"unknown name {tok!r}")
        elif kind == "str":
            out.append(_cel_string(_unquote(tok)))
        elif kind == "op" and tok == "??":
            raise ArgoExprError("'??' has no CEL counterpart")
        else:
            depth += (tok in "([" and 1) or 0
            depth -= (tok in ")]" and 1) or 0
            out.append(f" {tok} " if tok in ("==", "!=", "&&", "||", "?", ":") else tok)
        i += 1
    if depth != 0:
        raise ArgoExprError("unbalanced brackets")
    return "".join(out).strip()


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _literal(token: tuple[str, str]) -> str:
    kind, tok = token
    if kind != "str":
        raise ArgoExprError("'matches' needs a quoted pattern")
    return _cel_string(_unquote(tok))


def _variable(tokens: list[tuple[str, str]], i: int) -> tuple[list[str], int]:
    """``a.b['c-d'].e`` from token i: its segments and the index after it."""
    segments = [tokens[i][1]]
    i += 1
    while i < len(tokens):
        if tokens[i][1] == "." and i + 1 < len(tokens) and tokens[i + 1][0] == "name":
            segments.append(tokens[i + 1][1])
            i += 2
        elif (
            tokens[i][1] == "["
            and i + 2 < len(tokens)
            and tokens[i + 1][0] == "str"
            and tokens[i + 2][1] == "]"
        ):
            segments.append(_unquote(tokens[i + 1][1]))
            i += 3
        else:
            break
    return segments, i


_JSONPATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]")


def _jsonpath(tokens: list[tuple[str, str]], i: int, resolve: Resolver) -> tuple[str, int]:
    """``jsonpath(VAR, 'PATH')`` with a constant `$`-path of keys and indexes."""
    if tokens[i + 2][0] != "name" or tokens[i + 2][1] not in _ROOTS:
        raise ArgoExprError("jsonpath() takes a variable, then a quoted path")
    segments, j = _variable(tokens, i + 2)
    if j + 3 >= len(tokens) + 1 or tokens[j][1] != "," or tokens[j + 1][0] != "str":
        raise ArgoExprError("jsonpath() takes a variable, then a quoted path")
    if j + 2 >= len(tokens) or tokens[j + 2][1] != ")":
        raise ArgoExprError("jsonpath() takes two arguments")
    path = _unquote(tokens[j + 1][1])
    if not path.startswith("$"):
        raise ArgoExprError(f"jsonpath {path!r} does not start with '$'")
    rest, cel = path[1:], resolve(segments)
    while rest:
        m = _JSONPATH_STEP.match(rest)
        if m is None:
            raise ArgoExprError(f"jsonpath {path!r}: only keys and indexes are translated")
        key, index, quoted = m.groups()
        cel += f"[{index}]" if index is not None else f"[{_cel_string(key or quoted)}]"
        rest = rest[m.end() :]
    return cel, j + 3


# --- DAG `depends` -----------------------------------------------------------------------

_DEP_TOKEN = re.compile(r"\s*(?:(?P<op>&&|\|\||[!()])|(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*))")
#: Argo task results → the native statuses that satisfy them.
RESULTS: dict[str, tuple[str, ...]] = {
    "Succeeded": ("SUCCEEDED",),
    "Failed": ("FAILED",),
    "Errored": ("FAILED",),
    "Skipped": ("SKIPPED",),
    "Omitted": ("SKIPPED",),
    "Daemoned": (),
    "AnySucceeded": ("SUCCEEDED",),
    "AllFailed": ("FAILED",),
}
_BARE = ("SUCCEEDED", "SKIPPED")


@dataclass
class Depends:
    """A `depends` expression read: every task it names, those that are plain top-level
    conjuncts (``A && …``: A must not fail, as a native plain need), and a CEL condition
    over the tasks' statuses (`status` gives a task's native status expression)."""

    tasks: list[str]
    plain: list[str]
    cel: str


def parse_depends(text: str, status: Callable[[str], str]) -> Depends:
    """Argo's enhanced `depends` (``A && (B.Failed || C.Skipped)``; a bare name is
    ``A.Succeeded || A.Skipped || A.Daemoned``) as tasks and a CEL status condition."""
    tokens: list[tuple[str, str]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _DEP_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ArgoExprError(f"cannot read {text[pos:]!r}")
        kind = m.lastgroup or "op"
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    if not tokens:
        raise ArgoExprError("empty depends")
    tasks: list[str] = []
    plain: list[str] = []
    out: list[str] = []
    depth, expect_operand = 0, True
    conjunct_start = True
    for idx, (kind, tok) in enumerate(tokens):
        if kind == "name":
            if not expect_operand:
                raise ArgoExprError(f"expected '&&' or '||' before {tok!r}")
            name, _, result = tok.partition(".")
            if result and result not in RESULTS:
                raise ArgoExprError(f"unknown task result {result!r} (one of {', '.join(RESULTS)})")
            if name not in tasks:
                tasks.append(name)
            allowed = RESULTS[result] if result else _BARE
            following = tokens[idx + 1][1] if idx + 1 < len(tokens) else "&&"
            if depth == 0 and conjunct_start and following == "&&" and result in ("", "Succeeded"):
                plain.append(name)
            st = status(name)
            if not allowed:
                out.append("false")
            elif len(allowed) == 1:
                out.append(f"{st} == '{allowed[0]}'")
            else:
                out.append(f"{st} in [{', '.join(repr(a) for a in allowed)}]")
            expect_operand = False
        elif tok in ("&&", "||"):
            if expect_operand:
                raise ArgoExprError(f"{tok!r} needs a task before it")
            conjunct_start = tok == "&&" and depth == 0
            out.append(f" {tok} ")
            expect_operand = True
        elif tok == "!":
            if not expect_operand:
                raise ArgoExprError("'!' must come before a task")
            out.append("!")
            conjunct_start = False
        elif tok == "(":
            if not expect_operand:
                raise ArgoExprError("expected '&&' or '||' before '('")
            depth += 1
            out.append("(")
        else:
            depth -= 1
            if depth < 0 or expect_operand:
                raise ArgoExprError("unbalanced ')'")
            out.append(")")
    if depth != 0 or expect_operand:
        raise ArgoExprError("the expression is incomplete")
    if any(t == "||" for _, t in tokens if depth == 0):  # an `||` anywhere: not all plain
        plain = [p for p in plain if _top_level_and_only(tokens)]
    return Depends(tasks, plain, "".join(out))


def _top_level_and_only(tokens: list[tuple[str, str]]) -> bool:
    depth = 0
    for _, tok in tokens:
        depth += tok == "("
        depth -= tok == ")"
        if tok == "||" and depth == 0:
            return False
    return True
