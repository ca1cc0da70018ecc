"""JSON Schemas of a function's inputs and output: checked when a step runs, and derived
from a Python callable's signature for `actorflow functions init`.

Pure (pydantic and jsonschema only). A schema is checked once, when its function is
applied (`check_schema`), compiled once per replica (`Checker`), and a value that does
not fit names the first field that does not (``items[2].qty: -1 is less than the minimum
of 0``), so a failing node says what to fix.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

import jsonschema
from pydantic import TypeAdapter, create_model

JsonSchema = dict[str, Any]
_CONTEXT_PARAM = "ctx"  # the StepContext a handler may ask for: not an input


def check_schema(schema: JsonSchema) -> JsonSchema:
    """`schema` itself, if it is a valid JSON Schema (draft 2020-12); `ValueError` if not."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = _path(exc.absolute_path)
        at = f" at {where}" if where else ""
        raise ValueError(f"not a JSON Schema{at}: {exc.message}") from None
    return schema


class Checker:
    """One compiled schema; `problem(value)` is None when the value fits."""

    def __init__(self, schema: JsonSchema) -> None:
        self._validator = jsonschema.Draft202012Validator(schema)

    def problem(self, value: Any) -> str | None:
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
        if error is None:
            return None
        where = _path(error.absolute_path)
        return f"{where}: {error.message}" if where else error.message


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe_callable(fn: Callable[..., Any]) -> tuple[JsonSchema, JsonSchema, str]:
    """The input schema (an object of the named parameters, from their type hints and
    defaults), the output schema (from the return hint; ``{}`` — anything — without one)
    and the docstring's first paragraph.

    Raises:
        TypeError: a parameter that cannot be an input (``*args``, positional-only) or a
            hint pydantic cannot express as JSON Schema.
    """
    signature = inspect.signature(fn)
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if name == _CONTEXT_PARAM:
            continue
        if param.kind in (param.VAR_KEYWORD,):
            continue  # extra inputs are welcome: the schema does not forbid them
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            raise TypeError(f"parameter {name!r}: inputs are passed by name")
        default = ... if param.default is param.empty else param.default
        fields[name] = (hints.get(name, Any), default)
    model = create_model(f"{fn.__name__}_inputs", **fields)
    try:
        inputs = model.model_json_schema()
        output = TypeAdapter(hints["return"]).json_schema() if "return" in hints else {}
    except Exception as exc:  # pydantic's errors for unsupported types vary by version
        raise TypeError(f"{fn.__qualname__}: a type hint has no JSON Schema: {exc}") from exc
    inputs.pop("title", None)
    if "additionalProperties" not in inputs and not any(
        p.kind is p.VAR_KEYWORD for p in signature.parameters.values()
    ):
        inputs["additionalProperties"] = False
    doc = inspect.getdoc(fn) or ""
    return inputs, output, doc.split("\n\n", 1)[0].replace("\n", " ").strip()
