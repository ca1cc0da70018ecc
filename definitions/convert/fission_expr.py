"""Fission Workflows' JavaScript expressions → CEL — pure: no Ray, no NATS.

Fission evaluates ``{ … }`` strings with Otto, a JavaScript interpreter. What workflows
write in practice is a small part of JavaScript: property paths over ``$`` and the helper
functions (``output('X')``, ``param()``, ``task().Inputs._prev``), comparisons, arithmetic,
string concatenation, ``||`` defaults, ternaries, object and array literals and a few
string methods. That subset is parsed here by a small precise parser (a Pratt parser over
our own tokens) rather than a general JavaScript parser, so that everything outside the
subset — a function body, an assignment, ``new``, a regular expression — is refused at its
column with what to do, instead of being half understood.

JavaScript and CEL differ in ways the translation has to spell out:

- ``||`` / ``&&`` / ``!`` / ``?:`` and ``if`` conditions test *truthiness* (``null``,
  ``false``, ``0`` and ``''`` are false) and ``a || b`` yields a value, not a boolean:
  ``a || b`` becomes ``truthy(a) ? a : b``. A property that is missing is ``undefined`` in
  JavaScript and an error in CEL, so a property path tested for truthiness is guarded with
  ``has()``.
- ``+`` concatenates as soon as one side is a string: the other side is wrapped in
  ``string()``. ``/`` is a floating division.
- ``x.length`` is ``size(x)``; ``substring``, ``indexOf``, ``trim``, ``toUpperCase``,
  ``toLowerCase``, ``split`` map to CEL's string extension functions.

Example::

    cel = to_cel(parse("$.Tasks.A.Output.length < 20"), env)   # size(nodes.A.output) < 20
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Protocol

# --- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    value: object  # str, int, float, bool or None


@dataclass(frozen=True)
class Ident:
    name: str
    pos: int


@dataclass(frozen=True)
class Member:
    obj: Node
    name: str | None  # a.b
    index: Node | None  # a[expr]
    pos: int


@dataclass(frozen=True)
class Call:
    callee: Node
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Unary:
    op: str
    arg: Node
    pos: int


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class Cond:
    test: Node
    then: Node
    other: Node


@dataclass(frozen=True)
class Obj:
    items: tuple[tuple[str, Node], ...]


@dataclass(frozen=True)
class Arr:
    items: tuple[Node, ...]


Node = Lit | Ident | Member | Call | Unary | Binary | Cond | Obj | Arr


class JsError(ValueError):
    """An expression that does not parse, or that has no CEL translation; `pos` is the
    0-based column in the expression."""

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos

    def __str__(self) -> str:
        return self.message if self.pos is None else f"{self.message} (column {self.pos + 1})"


# --- tokens -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>===|!==|==|!=|<=|>=|&&|\|\||=>|\+\+|--|[-+*/%<>!?:.,()\[\]{}=;&|^~`])
    """,
    re.VERBOSE,
)
_REFUSED_OPS = {
    "=>": "arrow functions are not converted",
    "=": "assignments are not converted",
    ";": "statements are not converted: write one expression",
    "++": "increments are not converted",
    "--": "decrements are not converted",
    "&": "bitwise operators have no CEL translation",
    "|": "bitwise operators have no CEL translation",
    "^": "bitwise operators have no CEL translation",
    "~": "bitwise operators have no CEL translation",
    "`": "template literals are not converted: concatenate with +",
}
_REFUSED_WORDS = {
    "function": "a JavaScript function body cannot be converted: compute the value in a "
    "function (a native Function) and read its output",
    "new": "'new' is not converted",
    "typeof": "'typeof' has no CEL translation",
    "instanceof": "'instanceof' has no CEL translation",
    "var": "statements are not converted: write one expression",
    "let": "statements are not converted: write one expression",
    "const": "statements are not converted: write one expression",
    "return": "statements are not converted: write one expression",
    "this": "'this' is not converted",
    "delete": "'delete' is not converted",
    "void": "'void' is not converted",
    "in": "the 'in' operator is not converted",
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, str, name, op, end
    text: str
    pos: int


def _tokens(source: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise JsError(f"unexpected character {source[pos]!r}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    out.append(_Tok("end", "", len(source)))
    return out


def _unquote(text: str, pos: int) -> str:
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
            continue
        if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 2 : i + 4]):
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    del pos
    return "".join(out)


# --- the parser ---------------------------------------------------------------------------

_BINARY = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "===": 3,
    "!==": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}


class _Parser:
    def __init__(self, source: str) -> None:
        self.toks = _tokens(source)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        if self.tok.text != text or self.tok.kind not in ("op",):
            raise JsError(f"expected {text!r}, found {self._what()}", self.tok.pos)
        return self.take()

    def _what(self) -> str:
        return "the end" if self.tok.kind == "end" else repr(self.tok.text)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise JsError("empty expression", 0)
        node = self.expression()
        if self.tok.kind != "end":
            self._refuse_or(f"unexpected {self._what()}")
        return node

    def _refuse_or(self, message: str) -> None:
        tok = self.tok
        if tok.kind == "op" and tok.text in _REFUSED_OPS:
            raise JsError(_REFUSED_OPS[tok.text], tok.pos)
        if tok.text == ",":
            raise JsError("the comma operator is not converted: write one expression", tok.pos)
        raise JsError(message, tok.pos)

    def expression(self) -> Node:
        test = self.binary(1)
        if self.tok.kind == "op" and self.tok.text == "?":
            self.take()
            then = self.expression()
            self.expect(":")
            other = self.expression()
            return Cond(test, then, other)
        return test

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        while True:
            tok = self.tok
            if tok.kind == "name" and tok.text in ("in", "instanceof"):
                raise JsError(_REFUSED_WORDS[tok.text], tok.pos)
            prec = _BINARY.get(tok.text) if tok.kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.take()
            right = self.binary(prec + 1)
            left = Binary(tok.text, left, right, tok.pos)

    def unary(self) -> Node:
        tok = self.tok
        if tok.kind == "op" and tok.text in ("!", "-", "+"):
            self.take()
            return Unary(tok.text, self.unary(), tok.pos)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while self.tok.kind == "op" and self.tok.text in (".", "[", "("):
            tok = self.take()
            if tok.text == ".":
                name = self.take()
                if name.kind != "name":
                    raise JsError("expected a property name after '.'", name.pos)
                node = Member(node, name.text, None, name.pos)
            elif tok.text == "[":
                index = self.expression()
                self.expect("]")
                node = Member(node, None, index, tok.pos)
            else:
                args: list[Node] = []
                while not (self.tok.kind == "op" and self.tok.text == ")"):
                    args.append(self.expression())
                    if self.tok.text == ",":
                        self.take()
                    elif self.tok.text != ")":
                        self._refuse_or(f"expected ',' or ')', found {self._what()}")
                self.take()
                node = Call(node, tuple(args), tok.pos)
        return node

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            text = tok.text
            is_int = re.fullmatch(r"\d+", text) is not None
            return Lit(int(text) if is_int else float(text))
        if tok.kind == "str":
            return Lit(_unquote(tok.text, tok.pos))
        if tok.kind == "name":
            if tok.text in _REFUSED_WORDS:
                raise JsError(_REFUSED_WORDS[tok.text], tok.pos)
            words: dict[str, object] = {"true": True, "false": False, "null": None}
            if tok.text in words:
                return Lit(words[tok.text])
            if tok.text == "undefined":
                return Lit(None)
            return Ident(tok.text, tok.pos)
        if tok.kind == "op" and tok.text == "(":
            node = self.expression()
            self.expect(")")
            return node
        if tok.kind == "op" and tok.text == "[":
            items: list[Node] = []
            while not (self.tok.kind == "op" and self.tok.text == "]"):
                items.append(self.expression())
                if self.tok.text == ",":
                    self.take()
                elif self.tok.text != "]":
                    self._refuse_or(f"expected ',' or ']', found {self._what()}")
            self.take()
            return Arr(tuple(items))
        if tok.kind == "op" and tok.text == "{":
            return self.object(tok)
        self.i -= 1
        if tok.kind == "end":
            raise JsError("the expression ends too early", tok.pos)
        self._refuse_or(f"unexpected {tok.text!r}")
        raise AssertionError  # pragma: no cover - _refuse_or always raises

    def object(self, start: _Tok) -> Node:
        items: list[tuple[str, Node]] = []
        while not (self.tok.kind == "op" and self.tok.text == "}"):
            key = self.take()
            if key.kind == "str":
                name = _unquote(key.text, key.pos)
            elif key.kind in ("name", "num"):
                name = key.text
            else:
                raise JsError(f"expected a property name, found {key.text!r}", key.pos)
            self.expect(":")
            items.append((name, self.expression()))
            if self.tok.text == ",":
                self.take()
            elif self.tok.text != "}":
                self._refuse_or(f"expected ',' or '}}', found {self._what()}")
        self.take()
        del start
        return Obj(tuple(items))


def parse(source: str) -> Node:
    """The expression's tree.

    Raises:
        JsError: it is not an expression of the supported subset (with the column).
    """
    return _Parser(source).parse()


# --- the translation ----------------------------------------------------------------------


class Env(Protocol):
    """What names mean where the expression stands (the converter knows the tasks)."""

    def task_field(self, task: str, field: str, pos: int) -> Cel:
        """`$.Tasks.<task>.<field>` / `output(task)` … (field: Output, OutputHeaders,
        Inputs, Status)."""
        ...

    def current_input(self, key: str | None, pos: int) -> Cel:
        """`task().Inputs.<key>` of the task the expression belongs to (None: all)."""
        ...

    def invocation_input(self, key: str | None, pos: int) -> Cel:
        """`$.Invocation.Inputs.<key>` / `param(key)` (None: all of them)."""
        ...

    def variable(self, name: str, pos: int) -> Cel:
        """A bare identifier (the arguments of a `javascript` task; `taskId`)."""
        ...


@dataclass(frozen=True)
class Cel:
    """CEL source with what is statically known of its type (string, number, bool, null,
    map, list or any) and whether it is a property path (`has()` can test it)."""

    text: str
    kind: str = "any"
    path: bool = False


_METHODS = {
    "substring": ("substring", "string"),
    "indexOf": ("indexOf", "number"),
    "lastIndexOf": ("lastIndexOf", "number"),
    "trim": ("trim", "string"),
    "toUpperCase": ("upperAscii", "string"),
    "toLowerCase": ("lowerAscii", "string"),
    "split": ("split", "list"),
    "startsWith": ("startsWith", "bool"),
    "endsWith": ("endsWith", "bool"),
    "includes": ("contains", "bool"),
    "charAt": ("charAt", "string"),
}
_TASK_FIELDS = ("Output", "OutputHeaders", "Inputs", "Status")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def cel_string(text: str) -> str:
    """A CEL string literal (JSON's escapes are CEL's)."""
    return json.dumps(text, ensure_ascii=False)


def cel_literal(value: object) -> Cel:
    """A JSON value as a CEL literal."""
    if value is None:
        return Cel("null", "null")
    if isinstance(value, bool):
        return Cel("true" if value else "false", "bool")
    if isinstance(value, int | float):
        return Cel(repr(value), "number")
    if isinstance(value, str):
        return Cel(cel_string(value), "string")
    if isinstance(value, list):
        return Cel("[" + ", ".join(cel_literal(v).text for v in value) + "]", "list")
    if isinstance(value, dict):
        body = ", ".join(f"{cel_string(str(k))}: {cel_literal(v).text}" for k, v in value.items())
        return Cel("{" + body + "}", "map")
    raise JsError(f"a {type(value).__name__} has no CEL literal")


def truthy(value: Cel) -> str:
    """A boolean CEL test of JavaScript truthiness."""
    if value.kind == "bool":
        return value.text
    if value.kind in ("map", "list"):
        return "true"
    test = f"[{value.text}].exists(t, t != null && t != false && t != 0 && t != '')"
    if value.kind == "string":
        test = f"({value.text} != '')"
    elif value.kind == "number":
        test = f"({value.text} != 0)"
    elif value.kind == "null":
        test = "false"
    if value.path:
        return f"(has({value.text}) && {test})"
    return test


def to_cel(node: Node, env: Env) -> Cel:
    """`node` as CEL in `env`.

    Raises:
        JsError: a construct without a translation (with its column).
    """
    return _Translator(env).tr(node)


class _Translator:
    def __init__(self, env: Env) -> None:
        self.env = env

    def tr(self, node: Node) -> Cel:
        if isinstance(node, Lit):
            return cel_literal(node.value)
        if isinstance(node, Ident):
            if node.name == "$":
                raise JsError("'$' alone is not converted: name a path such as $.Tasks.X", node.pos)
            if node.name in ("param", "output", "outputHeaders", "input", "task", "uid"):
                raise JsError(f"{node.name} is a function: call it", node.pos)
            return self.env.variable(node.name, node.pos)
        if isinstance(node, Member):
            return self.member(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Unary):
            arg = self.tr(node.arg)
            if node.op == "!":
                return Cel(f"!{_paren(truthy(arg))}", "bool")
            if node.op == "-":
                return Cel(f"-{_paren(arg.text)}", "number")
            return Cel(f"double({arg.text})", "number")
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Cond):
            test, then, other = self.tr(node.test), self.tr(node.then), self.tr(node.other)
            kind = then.kind if then.kind == other.kind else "any"
            return Cel(f"({truthy(test)} ? {then.text} : {other.text})", kind)
        if isinstance(node, Obj):
            body = ", ".join(f"{cel_string(k)}: {self.tr(v).text}" for k, v in node.items)
            return Cel("{" + body + "}", "map")
        return Cel("[" + ", ".join(self.tr(v).text for v in node.items) + "]", "list")

    def binary(self, node: Binary) -> Cel:
        left, right = self.tr(node.left), self.tr(node.right)
        op = node.op
        if op in ("||", "&&"):
            if left.kind == "bool" and right.kind == "bool":
                return Cel(f"({left.text} {op} {right.text})", "bool")
            kind = left.kind if left.kind == right.kind else "any"
            if op == "||":
                return Cel(f"({truthy(left)} ? {left.text} : {right.text})", kind)
            return Cel(f"({truthy(left)} ? {right.text} : {left.text})", kind)
        if op in ("==", "===", "!=", "!=="):
            return Cel(f"({left.text} {op[:2]} {right.text})", "bool")
        if op in ("<", "<=", ">", ">="):
            return Cel(f"({left.text} {op} {right.text})", "bool")
        if op == "+" and "string" in (left.kind, right.kind):
            parts = [x.text if x.kind == "string" else f"string({x.text})" for x in (left, right)]
            return Cel(f"({parts[0]} + {parts[1]})", "string")
        if op == "/":
            return Cel(f"(double({left.text}) / double({right.text}))", "number")
        kind = "number" if "number" in (left.kind, right.kind) else "any"
        return Cel(f"({left.text} {op} {right.text})", kind)

    def member(self, node: Member) -> Cel:
        resolved = self.resolve(node)
        if resolved is not None:
            return resolved
        obj = self.tr(node.obj)
        if node.name == "length":
            return Cel(f"size({obj.text})", "number")
        if node.name is not None:
            if node.name in _METHODS:
                raise JsError(f"{node.name} is a method: call it", node.pos)
            return Cel(f"{obj.text}.{node.name}", path=True)
        assert node.index is not None
        index = self.tr(node.index)
        return Cel(f"{obj.text}[{index.text}]")

    def resolve(self, node: Node) -> Cel | None:
        """The paths that name workflow data: `$.Tasks.X.F`, `$.Invocation.Inputs.K`,
        `task().Inputs.K`, and members of them (None when `node` is none of these)."""
        chain: list[tuple[str, int]] = []
        cur: Node = node
        while isinstance(cur, Member):
            if cur.name is not None:
                chain.append((cur.name, cur.pos))
            elif isinstance(cur.index, Lit) and isinstance(cur.index.value, str):
                chain.append((cur.index.value, cur.pos))  # $.Tasks['X']
            else:
                break
            cur = cur.obj
        chain.reverse()
        names = [n for n, _ in chain]
        if isinstance(cur, Ident) and cur.name == "$":
            if names[:1] == ["Tasks"]:
                if len(names) < 3 or names[2] not in _TASK_FIELDS:
                    raise JsError(
                        "expected $.Tasks.<task>.Output (or OutputHeaders, Inputs, Status)",
                        cur.pos,
                    )
                if names[2] == "Inputs" and len(names) > 3:
                    base = self.env.task_field(names[1], "Inputs", chain[1][1])
                    return _select(Cel(base.text, "map"), chain[3:])
                base = self.env.task_field(names[1], names[2], chain[1][1])
                return _select(base, chain[3:])
            if names[:2] == ["Invocation", "Inputs"]:
                if len(names) == 2:
                    return self.env.invocation_input(None, cur.pos)
                base = self.env.invocation_input(names[2], chain[2][1])
                return _select(base, chain[3:])
            if names[:1] == ["Workflow"]:
                raise JsError("$.Workflow has no native counterpart", cur.pos)
            raise JsError(
                "expected $.Tasks.<task>.… or $.Invocation.Inputs.…", chain[0][1] if chain else 0
            )
        if isinstance(cur, Call) and isinstance(cur.callee, Ident) and cur.callee.name == "task":
            if not chain or names[0] not in ("Inputs", *_TASK_FIELDS):
                raise JsError("expected task().Inputs.<key>", cur.pos)
            if cur.args:
                task = self._string_arg(cur, 0)
                if names[0] == "Inputs" and len(names) > 1:
                    base = self.env.task_field(task, "Inputs", cur.pos)
                    return _select(Cel(base.text, "map"), chain[1:])
                return _select(self.env.task_field(task, names[0], cur.pos), chain[1:])
            if names[0] != "Inputs":
                raise JsError("task() of the current task has only Inputs here", cur.pos)
            if len(names) == 1:
                return self.env.current_input(None, cur.pos)
            return _select(self.env.current_input(names[1], chain[1][1]), chain[2:])
        if cur is not node and isinstance(cur, Call):
            base = self.call(cur)
            if chain and chain[0][0] in _METHODS:
                return None
            return _select(base, chain) if chain else base
        return None

    def call(self, node: Call) -> Cel:
        callee = node.callee
        if isinstance(callee, Ident):
            name = callee.name
            if name == "param":
                key = self._string_arg(node, 0) if node.args else "default"
                return self.env.invocation_input(key, node.pos)
            if name in ("output", "outputHeaders"):
                task = self._string_arg(node, 0)
                field = "Output" if name == "output" else "OutputHeaders"
                return self.env.task_field(task, field, node.pos)
            if name == "input":
                task, key = self._string_arg(node, 0), self._string_arg(node, 1)
                base = self.env.task_field(task, "Inputs", node.pos)
                return Cel(f"{base.text}.{key}" if _IDENT.fullmatch(key) else base.text, path=True)
            if name == "task":
                raise JsError("task() alone is not converted: write task().Inputs.<key>", node.pos)
            if name == "uid":
                raise JsError("uid() has no native counterpart (run.id is the run's id)", node.pos)
            raise JsError(f"unknown function {name}()", node.pos)
        if isinstance(callee, Member) and callee.name in _METHODS:
            target = self.tr(callee.obj)
            cel_name, kind = _METHODS[callee.name]
            args = ", ".join(self.tr(a).text for a in node.args)
            return Cel(f"{target.text}.{cel_name}({args})", kind)
        if isinstance(callee, Member) and callee.name is not None:
            raise JsError(f"the method {callee.name}() has no CEL translation", callee.pos)
        raise JsError("this call is not converted", node.pos)

    def _string_arg(self, node: Call, i: int) -> str:
        if len(node.args) <= i or not isinstance(node.args[i], Lit):
            raise JsError("expected a quoted name as argument", node.pos)
        value = node.args[i]
        assert isinstance(value, Lit)
        if not isinstance(value.value, str):
            raise JsError("expected a quoted name as argument", node.pos)
        return value.value


def _select(base: Cel, chain: list[tuple[str, int]]) -> Cel:
    text, kind, path = base.text, base.kind, base.path
    for name, _ in chain:
        if name == "length":
            text, kind, path = f"size({text})", "number", False
        elif name in _METHODS:
            raise JsError(f"{name} is a method: call it")
        elif _IDENT.fullmatch(name):
            text, kind, path = f"{text}.{name}", "any", True
        else:
            text, kind, path = f"{text}[{cel_string(name)}]", "any", False
    return Cel(text, kind, path)


def _paren(text: str) -> str:
    return text if text.startswith(("(", "[")) and _balanced(text) else f"({text})"


def _balanced(text: str) -> bool:
    """Whether `text`'s first bracket closes at its very end (so it needs no more)."""
    depth, quote = 0, ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
    return depth == 0


__all__ = [
    "Cel",
    "Env",
    "JsError",
    "Node",
    "cel_literal",
    "cel_string",
    "parse",
    "to_cel",
    "truthy",
]
