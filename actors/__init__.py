"""The engines that run on Ray: one subpackage each.

- ``store``      — JetStream setup, the definitions registry, blobs, stream and log reading,
                   NATS retries and error translation. Imports no other engine.
- ``functions``  — the function engine: pools, replicas (where a handler runs), autoscaler,
                   placement groups, accounting, output capture. May import ``store``.
- ``run``        — the run engine: the run state machine (where a run's state changes), run
                   actors, their supervisor, records, hooks, signals. May import ``store``
                   and ``functions.handlers``.
- ``controller`` — the controller actor and the services it delegates to. May import all.

Everything here may import ``actorflow.definitions`` and ``actorflow.runtime_envs``, never
``triggers``, ``cluster`` or the SDK (DESIGN's import direction).
"""

from actorflow.actors.config import EngineConfig

__all__ = ["EngineConfig"]
