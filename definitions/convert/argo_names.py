"""Argo names as native ones: node ids, input names, definition names, CEL literals."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_NOT_ID = re.compile(r"[^A-Za-z0-9_]")
_NOT_NAME = re.compile(r"[^a-z0-9_-]+")


def ident(name: str) -> str:
    """An Argo step, task or parameter name (``flip-coin``) as a native id (``flip_coin``)."""
    out = _NOT_ID.sub("_", str(name))
    return out if out and (out[0].isalpha() or out[0] == "_") else f"_{out}"


def unique(name: str, taken: set[str]) -> str:
    """`ident(name)`, suffixed where two Argo names map to one id (``a-b`` and ``a_b``)."""
    base = ident(name)
    out, n = base, 2
    while out in taken:
        out, n = f"{base}_{n}", n + 1
    taken.add(out)
    return out


def definition_name(*parts: str) -> str:
    """A native definition name (lowercase, ``-``/``_``, at most 64) from Argo names; a
    long one keeps its start and a hash of the whole, so distinct names stay distinct."""
    raw = "--".join(p.strip("-") for p in parts if p)
    out = _NOT_NAME.sub("-", raw.lower()).strip("-_") or "argo"
    if len(out) > 64:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        out = out[:55].rstrip("-_") + "-" + digest
    return out


def cel_literal(value: Any) -> str:
    """A JSON value as a CEL literal (``{'a': [1, 'x']}``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(cel_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{cel_literal(str(k))}: {cel_literal(v)}" for k, v in value.items())
            + "}"
        )
    return cel_literal(str(value))


def field(base: str, key: str) -> str:
    """``base.key``, or ``base['key']`` where the key is not a CEL identifier."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{base}.{key}"
    return f"{base}[{cel_literal(key)}]"


def seconds(value: Any) -> Any:
    """An Argo duration: a bare number (or numeric string) is seconds; others pass on."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        number = float(text)
        return int(number) if number.is_integer() else number
    return text


def wrap(cel: str) -> str:
    """CEL as one native ``${{ … }}`` (whose end is the first ``}}``: a map literal's
    closing braces are spaced apart)."""
    return "${{ " + cel.replace("}}", "} }").replace("}}", "} }") + " }}"


def as_text(value: Any) -> str:
    """Argo parameter values are strings: a YAML number or boolean is its text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def cel_of_text(text: Any) -> str:
    """A native templated string as one CEL expression (``'a-' + string(x)``)."""
    if not isinstance(text, str):
        return cel_literal(text)
    parts = re.split(r"\$\{\{(.*?)\}\}", text, flags=re.DOTALL)
    if len(parts) == 3 and parts[0] == parts[2] == "":
        return parts[1].strip()
    pieces = []
    for i, part in enumerate(parts):
        if i % 2:
            pieces.append(f"string({part.strip()})")
        elif part:
            pieces.append(cel_literal(part))
    return " + ".join(pieces) if pieces else "''"
