"""Function input/output schemas: refused when they are no JSON Schema, checked values
name the field that does not fit, and `functions init` derives them from a callable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Function
from actorflow.definitions.schemas import Checker, check_schema, describe_callable


class Line(BaseModel):
    sku: str
    qty: int = Field(ge=1)


def price(lines: list[Line], currency: str = "EUR", ctx: Any = None) -> float:
    """Price an order.

    Not part of the description."""
    return 0.0


def loose(a: int, **more: Any) -> None:
    return None


def positional(a: int, /) -> int:
    return a


def test_a_schema_that_is_no_json_schema_is_refused_with_where() -> None:
    assert check_schema({"type": "object"}) == {"type": "object"}
    with pytest.raises(ValueError, match=r"not a JSON Schema at properties\.a\.type"):
        check_schema({"properties": {"a": {"type": "integr"}}})


def test_a_bad_input_schema_is_refused_at_its_line() -> None:
    text = """\
apiVersion: actorflow/v1
kind: Function
metadata: {name: f}
spec:
  handler: m:f
  inputSchema:
    type: 12
"""
    with pytest.raises(DefinitionError) as err:
        load_text(text, file="f.yaml")
    (issue,) = err.value.issues
    assert (issue.line, issue.field) == (6, "spec.inputSchema")
    assert "not a JSON Schema" in issue.message


def test_the_checker_names_the_first_field_that_does_not_fit() -> None:
    inputs, _, _ = describe_callable(price)
    check = Checker(inputs)
    assert check.problem({"lines": [{"sku": "a", "qty": 2}]}) is None
    problem = check.problem({"lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}]})
    assert problem is not None
    assert problem.startswith("lines[1].qty: 0 is less than the minimum of 1")
    assert check.problem({"lines": [], "colour": "red"}) == (
        "Additional properties are not allowed ('colour' was unexpected)"
    )
    assert "'lines' is a required property" in (check.problem({}) or "")


def test_describe_callable_reads_hints_defaults_and_the_docstring() -> None:
    inputs, output, description = describe_callable(price)
    assert set(inputs["properties"]) == {"lines", "currency"}  # ctx is no input
    assert inputs["required"] == ["lines"]
    assert inputs["properties"]["currency"]["default"] == "EUR"
    assert output == {"type": "number"}
    assert description == "Price an order."
    loose_inputs, loose_output, _ = describe_callable(loose)
    assert "additionalProperties" not in loose_inputs  # **more takes anything
    assert loose_output == {"type": "null"}
    with pytest.raises(TypeError, match="inputs are passed by name"):
        describe_callable(positional)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_functions_init_writes_a_definition_that_loads_and_checks(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(
        "def total(prices: list[float], discount: float = 0.0) -> float:\n"
        '    """Sum prices, less a discount."""\n'
        "    return sum(prices) - discount\n"
    )
    out = tmp_path / "total.yaml"
    done = _cli("functions", "init", "shop:total", "--code-dir", ".", "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (function,) = load_text(out.read_text(), file=str(out))
    assert isinstance(function, Function)
    assert function.ref == "total@1"
    assert function.metadata.description == "Sum prices, less a discount."
    assert function.spec.handler == "shop:total"
    assert function.spec.input_schema is not None
    check = Checker(function.spec.input_schema)
    assert check.problem({"prices": [1.5, 2]}) is None
    assert (check.problem({"prices": ["x"]}) or "").startswith("prices[0]:")
    assert function.spec.output_schema == {"type": "number"}


def test_functions_init_refuses_a_bad_handler_with_usage_or_one_line(tmp_path: Path) -> None:
    usage = _cli("functions", "init", "no-colon", cwd=tmp_path)
    assert usage.returncode == 2
    assert "module:callable" in usage.stderr
    assert "Traceback" not in usage.stderr
    missing = _cli("functions", "init", "nosuchmodule:f", cwd=tmp_path)
    assert missing.returncode == 1
    assert "nosuchmodule:f cannot be imported" in missing.stderr
    assert "Traceback" not in missing.stderr
