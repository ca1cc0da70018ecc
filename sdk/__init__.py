"""actorflow: durable, event-driven workflows on Ray actors and NATS JetStream.

Example:
    ```python
    import actorflow

    client = actorflow.Client()
    client.apply("examples/hello/workflow.yaml")
    run = client.run("hello", {"name": "Ada"})
    print(run.result(timeout=60))
    ```
"""

from actorflow._client import AsyncClient, AsyncRun, PublishResult, TriggerInfo
from actorflow._sync import Client, Run
from actorflow._views import AttemptInfo, NodeInfo
from actorflow.actors.controller.results import Applied, ControlAccepted, EngineInfo
from actorflow.actors.functions.context import StepContext
from actorflow.actors.functions.pools import PoolStatus
from actorflow.builder import NodeHandle, WorkflowBuilder, function
from actorflow.cluster.settings import Settings
from actorflow.definitions.convert import ConvertOptions, ImageTarget
from actorflow.definitions.errors import (
    ActorflowError,
    AuthError,
    ClusterUnavailableError,
    ControlError,
    DefinitionError,
    DefinitionIssue,
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
    RemoteApiError,
    RunFailedError,
    StepError,
    TriggerError,
    UnsupportedError,
    WaitTimeoutError,
)
from actorflow.definitions.events import (
    ErrorInfo,
    LogLine,
    NodeStatus,
    RunRecord,
    RunStatus,
    StopReason,
)
from actorflow.definitions.loader import dump, load_file, load_text
from actorflow.definitions.models import (
    Connection,
    ErrorPolicy,
    EventType,
    Function,
    HookSpec,
    Replicas,
    RetryPolicy,
    RuntimeEnv,
    StepTemplate,
    Trigger,
    Workflow,
)

__version__ = "0.1.0"

__all__ = [
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
