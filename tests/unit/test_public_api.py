"""The public surface is what `actorflow.__all__` says, and nothing moves by accident."""

from __future__ import annotations

import actorflow

EXPECTED = [
    "ActorflowError",
    "Applied",
    "AsyncClient",
    "AsyncRun",
    "AttemptInfo",
    "AuthError",
    "Client",
    "ClusterUnavailableError",
    "Connection",
    "ControlAccepted",
    "ControlError",
    "ConvertOptions",
    "DefinitionError",
    "DefinitionIssue",
    "EngineInfo",
    "ErrorCode",
    "ErrorInfo",
    "ErrorPolicy",
    "EventRejectedError",
    "EventType",
    "ExpressionError",
    "FencedError",
    "Function",
    "FunctionPoolError",
    "HookSpec",
    "ImageTarget",
    "InUseError",
    "InputError",
    "LogLine",
    "NodeHandle",
    "NodeInfo",
    "NodeStatus",
    "NotFoundError",
    "PayloadError",
    "PlacementError",
    "PoolStatus",
    "PublishResult",
    "RemoteApiError",
    "Replicas",
    "RetryPolicy",
    "Run",
    "RunFailedError",
    "RunRecord",
    "RunStatus",
    "RuntimeEnv",
    "Settings",
    "StepContext",
    "StepError",
    "StepTemplate",
    "StopReason",
    "Trigger",
    "TriggerError",
    "TriggerInfo",
    "UnsupportedError",
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
