"""actorflow: durable, event-driven workflows on Ray actors and NATS JetStream.

Example::

    import actorflow

    client = actorflow.Client()
    client.apply("examples/hello/workflow.yaml")
    run = client.run("hello", {"name": "Ada"})
    print(run.result(timeout=60))
"""

from actorflow._views import NodeInfo
from actorflow.actors.functions.context import StepContext
from actorflow.builder import NodeHandle, WorkflowBuilder, function
from actorflow.client import AsyncClient, AsyncRun, TriggerInfo
from actorflow.cluster.settings import Settings
from actorflow.definitions.errors import (
    ActorflowError,
    ClusterUnavailableError,
    ControlError,
    DefinitionError,
    ErrorCode,
    EventRejectedError,
    ExpressionError,
    FencedError,
    FunctionPoolError,
    InputError,
    InUseError,
    NotFoundError,
    PayloadError,
    PlacementError,
    RunFailedError,
    StepError,
    TriggerError,
    WaitTimeoutError,
)
from actorflow.definitions.events import ErrorInfo, LogLine, RunRecord, RunStatus
from actorflow.definitions.loader import dump, load_file, load_text
from actorflow.definitions.models import (
    ErrorPolicy,
    EventType,
    Function,
    HookSpec,
    Replicas,
    RetryPolicy,
    RuntimeEnv,
    Trigger,
    Workflow,
)
from actorflow.sync import Client, Run

__version__ = "0.1.0"

__all__ = [
    "ActorflowError",
    "AsyncClient",
    "AsyncRun",
    "Client",
    "ClusterUnavailableError",
    "ControlError",
    "DefinitionError",
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
    "InUseError",
    "InputError",
    "LogLine",
    "NodeHandle",
    "NodeInfo",
    "NotFoundError",
    "PayloadError",
    "PlacementError",
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
    "Trigger",
    "TriggerError",
    "TriggerInfo",
    "WaitTimeoutError",
    "Workflow",
    "WorkflowBuilder",
    "__version__",
    "dump",
    "function",
    "load_file",
    "load_text",
]
