"""The function engine: pools of replica actors that execute steps.

A pool per ``name@version`` pulls tasks from one durable JetStream consumer; a replica
(``replica.py``) is where a handler runs, with its context, accounting and captured output.
Pools scale by a pure policy (``autoscaler.py``) and sit in placement groups
(``placement.py``). May import ``actorflow.actors.store``, never the run engine.
"""

from actorflow.actors.functions.autoscaler import Scaler, needed
from actorflow.actors.functions.context import StepContext
from actorflow.actors.functions.handlers import Handler, HandlerImportError
from actorflow.actors.functions.placement import Levels, cluster_nodes
from actorflow.actors.functions.pools import FunctionPool, check_fits
from actorflow.actors.functions.replica import FunctionReplica

__all__ = [
    "FunctionPool",
    "FunctionReplica",
    "Handler",
    "HandlerImportError",
    "Levels",
    "Scaler",
    "StepContext",
    "check_fits",
    "cluster_nodes",
    "needed",
]
