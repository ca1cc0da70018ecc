"""The run engine: where a run's state changes and who drives it.

``state.py`` is the pure run state machine (a fold of the history into decisions);
``actor.py`` hosts run drivers in warm Ray actors; ``supervisor.py`` hands runs to them and
re-drives runs whose actor died; ``history.py`` appends under the fence and replays;
``turns.py`` (pure) and ``queue.py`` decide and keep whose turn it is under a concurrency key.
May import ``actorflow.actors.store`` and the handler loader of ``functions``.
"""

from actorflow.actors.run.actor import RunActor
from actorflow.actors.run.history import DecisionLog, Recorded, replay
from actorflow.actors.run.hooks import HookRunner
from actorflow.actors.run.records import RecordWriter
from actorflow.actors.run.state import RunState
from actorflow.actors.run.supervisor import RunSupervisor

__all__ = [
    "DecisionLog",
    "HookRunner",
    "RecordWriter",
    "Recorded",
    "RunActor",
    "RunState",
    "RunSupervisor",
    "replay",
]
