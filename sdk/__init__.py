"""actorflow: durable, event-driven workflows on Ray actors and NATS JetStream.

Example::

    import actorflow

    client = actorflow.Client()
    client.apply("examples/hello/workflow.yaml")
    run = client.run("hello", {"name": "Ada"})
    print(run.result(timeout=60))
"""

from actorflow._views import NodeInfo
from actorflow.actors.context import StepContext
from actorflow.builder import NodeHandle, WorkflowBuilder, function
from actorflow.client import AsyncClient, AsyncRun
from actorflow.cluster.settings import Settings
from actorflow.definitions.errors import (
    ActorflowError,
    ClusterUnavailableError,
    ControlError,
    DefinitionError,
    ExpressionError,
    FencedError,
    InputError,
    NotFoundError,
    PayloadError,
    RunFailedError,
    StepError,
    WaitTimeoutError,
)
from actorflow.definitions.events import ErrorInfo, LogLine, RunRecord, RunStatus
from actorflow.definitions.loader import dump, load_file, load_text
from actorflow.definitions.models import ErrorPolicy, Function, HookSpec, RetryPolicy, Workflow
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
