"""The plan compiler: versions pinned, dependencies found, policies carried, inputs bound."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorflow.builder import WorkflowBuilder
from actorflow.definitions.errors import ExpressionError, InputError
from actorflow.definitions.models import InputSpec, RetryPolicy, Workflow
from actorflow.definitions.plan import bind_inputs, compile_plan, function_refs


def _workflow(nodes: list[dict[str, Any]], **spec: Any) -> Workflow:
    """A workflow validated as a model only (no graph checks): what compile_plan gets."""
    return Workflow.model_validate(
        {"metadata": {"name": "w", "version": "7"}, "spec": {"nodes": nodes, **spec}}
    )


def _remediated() -> Workflow:
    b = WorkflowBuilder("rem", version="2")
    a = b.node("a", "extract", inputs={"n": 1})
    b.node("b", "load@3", inputs={"rows": a.output})
    b.on_error("TRANSIENT", {"action": "retry", "retry": {"maxAttempts": 4}})
    b.on_error("BAD_ROW", {"action": "remediate", "function": "fixer@5", "then": "continue"})
    b.on_error("default", {"action": "manual", "guidance": "call the owner"})
    b.hook("after_run", "notify@1")
    b.hook("before_node", "mod:hook", nodes=["b"])
    return b.build()


# --- function_refs --------------------------------------------------------------------------
def test_function_refs_are_nodes_remediations_and_function_hooks() -> None:
    # A bare name is a reference to the latest version; module:callable hooks are no refs.
    assert function_refs(_remediated()) == {"extract@latest", "load@3", "fixer@5", "notify@1"}


def test_function_refs_leave_out_sleeps_waits_and_approvals() -> None:
    b = WorkflowBuilder("quiet")
    nap = b.sleep("nap", "1s")
    sig = b.wait("sig", "go", needs=[nap])
    b.approval("ok", needs=[sig])
    assert function_refs(b.build()) == set()


# --- compile_plan ---------------------------------------------------------------------------
def test_compile_pins_each_reference_to_the_version_it_was_resolved_to() -> None:
    wf = _remediated()
    plan = compile_plan(wf, {"extract@latest": "9", "load@3": "3", "fixer@5": "5", "notify@1": "1"})
    assert (plan.workflow, plan.version) == ("rem", "2")
    assert (plan.nodes["a"].function, plan.nodes["a"].version) == ("extract", "9")
    assert (plan.nodes["b"].function, plan.nodes["b"].version) == ("load", "3")
    assert plan.nodes["a"].kind == plan.nodes["b"].kind == "function"
    assert plan.nodes["b"].spec is wf.spec.nodes[1]


def test_every_function_ref_resolved_is_enough_to_compile() -> None:
    wf = _remediated()
    refs = function_refs(wf)
    plan = compile_plan(wf, {ref: f"v-{ref}" for ref in refs})
    pinned = {p.version for p in plan.on_error.values() if p.version}
    pinned |= {n.version for n in plan.nodes.values()}
    assert pinned == {f"v-{ref}" for ref in refs - {"notify@1"}}


def test_dependencies_are_needs_plus_the_nodes_expressions_read() -> None:
    wf = _workflow(
        [
            {"id": "a", "function": "f@1"},
            {"id": "b", "function": "f@1"},
            {"id": "c", "function": "f@1"},
            {"id": "k", "function": "f@1"},
            {
                "id": "d",
                "function": "f@1",
                "needs": ["a"],
                "inputs": {"x": "${{ nodes.b.output }}", "y": "n-${{ nodes['c'].output }}"},
            },
            {"id": "e", "function": "f@1", "forEach": "${{ nodes.c.output }}"},
            {"id": "s", "wait": {"signal": "go", "key": "${{ nodes.k.output.id }}"}},
            {"id": "z", "sleep": "1s", "needs": ["d", "e"]},
        ]
    )
    plan = compile_plan(wf, {"f@1": "1"})
    deps = {node_id: set(node.deps) for node_id, node in plan.nodes.items()}
    assert deps == {
        "a": set(),
        "b": set(),
        "c": set(),
        "k": set(),
        "d": {"a", "b", "c"},
        "e": {"c"},
        "s": {"k"},
        "z": {"d", "e"},
    }


def test_for_each_is_one_compiled_expression_and_inputs_a_template() -> None:
    wf = _workflow(
        [
            {"id": "a", "function": "f@1", "inputs": {"n": 3}},
            {
                "id": "b",
                "function": "f@1",
                "forEach": "${{ nodes.a.output }}",
                "inputs": {"item": "${{ item * 10 }}", "at": "i-${{ index }}", "fixed": [1]},
            },
        ]
    )
    plan = compile_plan(wf, {"f@1": "1"})
    a, b = plan.nodes["a"], plan.nodes["b"]
    assert a.for_each is None
    assert a.inputs.is_literal
    assert a.inputs.render({}) == {"n": 3}
    assert b.for_each is not None
    assert b.for_each.source == "nodes.a.output"
    assert b.for_each.evaluate({"nodes": {"a": {"output": [4, 5]}}}) == [4, 5]
    assert b.inputs.render({"item": 4, "index": 0}) == {"item": 40, "at": "i-0", "fixed": [1]}


def test_wait_key_is_compiled_and_only_wait_nodes_have_one() -> None:
    wf = _workflow(
        [
            {"id": "a", "function": "f@1"},
            {"id": "s", "wait": {"signal": "go", "key": "order-${{ inputs.id }}"}},
            {"id": "t", "sleep": 5},
            {"id": "p", "approval": {"guidance": "look"}},
        ],
        inputs={"id": {"type": "integer"}},
    )
    plan = compile_plan(wf, {"f@1": "1"})
    assert plan.nodes["s"].wait_key is not None
    assert plan.nodes["s"].wait_key.render({"inputs": {"id": 12}}) == "order-12"
    assert plan.nodes["a"].wait_key is plan.nodes["t"].wait_key is None
    assert plan.nodes["p"].wait_key is None
    kinds = {n: (p.kind, p.function, p.version) for n, p in plan.nodes.items()}
    assert kinds == {
        "a": ("function", "f", "1"),
        "s": ("wait", "", ""),
        "t": ("sleep", "", ""),
        "p": ("approval", "", ""),
    }


def test_retry_policy_node_first_then_the_functions_then_the_default() -> None:
    wf = _workflow(
        [
            {"id": "own", "function": "f@1", "retry": {"maxAttempts": 3, "initialDelay": "2s"}},
            {"id": "fn", "function": "f@1"},
            {"id": "plain", "function": "f@1"},
        ]
    )
    from_function = RetryPolicy(max_attempts=5, backoff=3.0)
    plan = compile_plan(wf, {"f@1": "1"}, {"own": RetryPolicy(max_attempts=9), "fn": from_function})
    assert plan.nodes["own"].retry == RetryPolicy(max_attempts=3, initial_delay=2.0)
    assert plan.nodes["fn"].retry == from_function
    assert plan.nodes["plain"].retry == RetryPolicy()
    assert plan.nodes["plain"].retry.max_attempts == 1


def test_error_policies_pin_their_remediation_and_fall_back_to_default() -> None:
    plan = compile_plan(
        _remediated(), {"extract@latest": "9", "load@3": "3", "fixer@5": "5", "notify@1": "1"}
    )
    remedy = plan.policy_for("BAD_ROW")
    assert remedy is not None
    assert (remedy.policy.action, remedy.function, remedy.version) == ("remediate", "fixer", "5")
    assert remedy.policy.then == "continue"
    transient = plan.policy_for("TRANSIENT")
    assert transient is not None
    assert (transient.function, transient.version) == (None, None)
    assert transient.policy.retry == RetryPolicy(max_attempts=4)
    other = plan.policy_for("NEVER_SEEN")
    assert other is not None
    assert other.policy.action == "manual"
    assert other.policy.guidance == "call the owner"


def test_without_a_default_policy_an_unlisted_code_has_none() -> None:
    b = WorkflowBuilder("w")
    b.node("a", "f@1")
    b.on_error("TRANSIENT", {"action": "skip"})
    plan = compile_plan(b.build(), {"f@1": "1"})
    assert plan.policy_for("OTHER") is None
    assert plan.policy_for("") is None
    skip = plan.policy_for("TRANSIENT")
    assert skip is not None
    assert skip.policy.action == "skip"


def test_hooks_outputs_and_inputs_are_carried_over() -> None:
    b = WorkflowBuilder("w")
    n = b.input("n", type="integer", default=2)
    a = b.node("a", "f@1", inputs={"n": n})
    b.output("double", "${{ nodes.a.output * 2 }}")
    b.output("label", "n=${{ inputs.n }}")
    b.hook("before_run", "mod:first")
    b.hook("after_node", "mod:second", nodes=[a])
    wf = b.build()
    plan = compile_plan(wf, {"f@1": "1"})
    assert [(h.on, h.call, h.nodes) for h in plan.hooks] == [
        ("before_run", "mod:first", []),
        ("after_node", "mod:second", ["a"]),
    ]
    assert plan.inputs == wf.spec.inputs
    ctx = {"nodes": {"a": {"output": 21}}, "inputs": {"n": 2}}
    assert plan.outputs.render(ctx) == {"double": 42, "label": "n=2"}


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ({"id": "a", "function": "f@1", "inputs": {"x": "${{ 1 + }}"}}, "spec.nodes[0].inputs.x"),
        ({"id": "a", "function": "f@1", "forEach": "${{ [1, }}"}, "spec.nodes[0].forEach"),
        ({"id": "a", "wait": {"signal": "go", "key": "${{ ( }}"}}, "spec.nodes[0].wait.key"),
    ],
)
def test_a_bad_expression_is_refused_with_where_it_is(node: dict[str, Any], field: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_plan(_workflow([node]), {"f@1": "1"})
    assert [issue.field for issue in caught.value.issues] == [field]


def test_a_bad_output_expression_is_refused_with_where_it_is() -> None:
    wf = _workflow([{"id": "a", "function": "f@1"}], outputs={"o": "${{ ) }}"})
    with pytest.raises(ExpressionError) as caught:
        compile_plan(wf, {"f@1": "1"})
    assert [issue.field for issue in caught.value.issues] == ["spec.outputs.o"]


# --- bind_inputs ----------------------------------------------------------------------------
def _declared(**specs: dict[str, Any]) -> dict[str, InputSpec]:
    return {name: InputSpec.model_validate(spec) for name, spec in specs.items()}


def test_given_values_are_kept_and_defaults_filled() -> None:
    declared = _declared(
        name={"type": "string"},
        n={"type": "integer", "default": 3},
        tags={"type": "array", "default": ["a"]},
        maybe={"default": None},
        optional={"type": "object", "required": False},
    )
    assert bind_inputs(declared, {"name": "x", "tags": []}) == {
        "name": "x",
        "n": 3,
        "tags": [],
        "maybe": None,
        "optional": None,
    }


def test_nothing_declared_nothing_given() -> None:
    assert bind_inputs({}, {}) == {}


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("string", ""),
        ("integer", -4),
        ("number", 2),
        ("number", 2.5),
        ("boolean", False),
        ("object", {"a": 1}),
        ("array", [1, "b"]),
        ("any", None),
        ("any", {"deep": [1]}),
        ("any", True),
    ],
)
def test_a_value_of_the_declared_type_is_accepted(type_: str, value: Any) -> None:
    assert bind_inputs(_declared(v={"type": type_}), {"v": value}) == {"v": value}


@pytest.mark.parametrize(
    ("type_", "value", "got"),
    [
        ("string", 1, "int"),
        ("integer", 1.5, "float"),
        ("integer", "1", "str"),
        ("integer", True, "bool"),  # a bool is an int to Python, not to JSON
        ("number", False, "bool"),
        ("number", "2", "str"),
        ("boolean", 0, "int"),
        ("object", [], "list"),
        ("array", {}, "dict"),
        ("string", None, "NoneType"),
    ],
)
def test_a_value_of_another_type_is_refused(type_: str, value: Any, got: str) -> None:
    with pytest.raises(InputError) as caught:
        bind_inputs(_declared(v={"type": type_}), {"v": value})
    assert str(caught.value) == f"input 'v' must be {type_}, got {got}"


def test_missing_and_unknown_inputs_are_refused() -> None:
    with pytest.raises(InputError, match=r"^missing required input 'n'$"):
        bind_inputs(_declared(n={"type": "integer"}), {})
    with pytest.raises(InputError, match=r"^unknown input\(s\): extra, other$"):
        bind_inputs({}, {"other": 1, "extra": 2})


def test_every_problem_is_told_at_once() -> None:
    declared = _declared(a={"type": "string"}, b={"type": "integer"}, c={"default": 1})
    with pytest.raises(InputError) as caught:
        bind_inputs(declared, {"b": "two", "zz": 0})
    assert str(caught.value) == (
        "unknown input(s): zz; missing required input 'a'; input 'b' must be integer, got str"
    )


_JSON_SCALARS = {
    "string": st.text(max_size=5),
    "integer": st.integers(),
    "number": st.integers() | st.floats(allow_nan=False),
    "boolean": st.booleans(),
}


@settings(deadline=None)  # a busy, shared machine must not fail a property on time
@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,6}", fullmatch=True),
        st.sampled_from(sorted(_JSON_SCALARS)).flatmap(
            lambda t: st.tuples(
                st.just(t), _JSON_SCALARS[t], st.none() | _JSON_SCALARS[t].map(lambda v: [v])
            )
        ),
        max_size=6,
    )
)
def test_binding_well_typed_inputs_gives_them_back_with_defaults(
    inputs: dict[str, tuple[str, Any, list[Any] | None]],
) -> None:
    """Each input is declared with its type and a default; some are given (another value
    of that type, boxed in a list here), the others take their default."""
    declared = _declared(
        **{name: {"type": t, "default": default} for name, (t, default, _) in inputs.items()}
    )
    given_ = {name: box[0] for name, (_, _, box) in inputs.items() if box is not None}
    bound = bind_inputs(declared, given_)
    assert bound == {
        name: box[0] if box is not None else default for name, (_, default, box) in inputs.items()
    }
    assert list(bound) == list(declared)
