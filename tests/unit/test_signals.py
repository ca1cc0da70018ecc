"""Signal payloads and approval inputs checked against their JSON schemas (no NATS)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorflow.actors.run.signals import check, check_payload

ORDER = {
    "type": "object",
    "required": ["id", "lines"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sku"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
            },
        },
        "note": {"type": "string", "maxLength": 5},
    },
}


@pytest.mark.parametrize("schema", [None, {}])
@pytest.mark.parametrize("value", [None, 0, "x", [1, {"a": None}], {"any": "thing"}])
def test_without_a_schema_anything_goes(value: Any, schema: dict[str, Any] | None) -> None:
    check(value, schema, "approval input")  # no exception


@pytest.mark.parametrize(
    "value",
    [
        {"id": 1, "lines": []},
        {"id": 7, "lines": [{"sku": "a", "qty": 2}, {"sku": "b"}], "note": "hi", "extra": 1},
    ],
)
def test_a_value_matching_its_schema_passes(value: Any) -> None:
    check(value, ORDER, "approval input")


@pytest.mark.parametrize(
    ("value", "where", "why"),
    [
        ("not an order", "the top", "'not an order' is not of type 'object'"),
        ({"lines": []}, "the top", "'id' is a required property"),
        ({"id": 0, "lines": []}, "id", "0 is less than the minimum of 1"),
        ({"id": 1, "lines": [{"sku": "a"}, {"qty": 1}]}, "lines/1", "'sku' is a required property"),
        ({"id": 1, "lines": [{"sku": "a", "qty": "2"}]}, "lines/0/qty", "'2' is not of type"),
        ({"id": 1, "lines": [], "note": "too long"}, "note", "is too long"),
    ],
)
def test_a_value_breaking_its_schema_is_refused_saying_where(
    value: Any, where: str, why: str
) -> None:
    with pytest.raises(ValueError, match=r"^approval input does not match its schema at ") as err:
        check(value, ORDER, "approval input")
    prefix = f"approval input does not match its schema at {where}: "
    assert str(err.value).startswith(prefix)
    assert why in str(err.value).removeprefix(prefix)


def test_the_refusal_names_what_was_checked() -> None:
    with pytest.raises(ValueError, match=r"^signal payload does not match its schema at the top"):
        check(1, {"type": "string"}, "signal payload")


def test_a_payload_is_parsed_and_checked() -> None:
    data = json.dumps({"id": 3, "lines": [{"sku": "z"}]}).encode()
    assert check_payload(data, ORDER) == {"id": 3, "lines": [{"sku": "z"}]}
    assert check_payload(b"[1, 2]", None) == [1, 2]
    assert check_payload(b'"text"', {"type": "string"}) == "text"


def test_an_empty_payload_is_null() -> None:
    assert check_payload(b"", None) is None
    assert check_payload(b"", {"type": "null"}) is None
    with pytest.raises(ValueError, match="at the top: None is not of type 'object'"):
        check_payload(b"", ORDER)


@pytest.mark.parametrize("data", [b"{", b"not json", b"\xff\xfe", b"{'single': 1}"])
def test_a_payload_that_is_not_json_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"^signal payload is not JSON: "):
        check_payload(data, None)


def test_a_payload_breaking_its_schema_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^signal payload does not match") as err:
        check_payload(b'{"id": 2, "lines": [{"sku": 5}]}', ORDER)
    assert str(err.value) == (
        "signal payload does not match its schema at lines/0/sku: 5 is not of type 'string'"
    )


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@settings(deadline=None)  # a busy, shared machine must not fail a property on time
@given(_JSON)
def test_any_json_payload_comes_back_as_sent_and_checked(value: Any) -> None:
    data = json.dumps(value).encode()
    assert check_payload(data, None) == value
    assert check_payload(data, {"const": value}) == value
    with pytest.raises(ValueError, match=r"^signal payload does not match its schema at the top"):
        check_payload(data, {"not": {"const": value}})
