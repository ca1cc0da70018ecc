"""The public surface is what `actorflow.__all__` says, and nothing moves by accident."""

from __future__ import annotations

import actorflow

EXPECTED = [
    "ActorflowError",
    "AsyncClient",
    "AsyncRun",
    "Client",
    "ClusterUnavailableError",
    "ControlError",
    "DefinitionError",
    "ErrorInfo",
    "ErrorPolicy",
    "ExpressionError",
    "FencedError",
    "Function",
    "HookSpec",
    "InputError",
    "LogLine",
    "NodeHandle",
    "NodeInfo",
    "NotFoundError",
    "PayloadError",
    "RetryPolicy",
    "Run",
    "RunFailedError",
    "RunRecord",
    "RunStatus",
    "Settings",
    "StepContext",
    "StepError",
    "WaitTimeoutError",
    "Workflow",
    "WorkflowBuilder",
    "__version__",
    "dump",
    "function",
    "load_file",
    "load_text",
]


def test_exported_names_are_pinned() -> None:
    assert sorted(actorflow.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(actorflow, name), name


def test_errors_form_one_tree() -> None:
    errors = [getattr(actorflow, n) for n in EXPECTED if n.endswith("Error")]
    assert all(issubclass(e, actorflow.ActorflowError) for e in errors)
