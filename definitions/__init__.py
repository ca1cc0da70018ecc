"""The definition language and the wire contract — pure: no Ray, no NATS.

Models of every kind (``models``), safe YAML loading with file / line / field errors
(``loader``), graph checks (``graph``), CEL expressions (``expressions``), plan compilation
(``plan``), subject patterns (``subjects``), the wire contract (``events``) and the error
tree (``errors``). Imports nothing else of actorflow; every other layer imports it.
"""

from actorflow.definitions.errors import ActorflowError, DefinitionError
from actorflow.definitions.graph import validate_workflow
from actorflow.definitions.loader import dump, load_file, load_path, load_text
from actorflow.definitions.plan import Plan, compile_plan

__all__ = [
    "ActorflowError",
    "DefinitionError",
    "Plan",
    "compile_plan",
    "dump",
    "load_file",
    "load_path",
    "load_text",
    "validate_workflow",
]
