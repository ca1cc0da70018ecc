"""Definition models: what a user writes in YAML (camelCase) or builds in Python.

The models are frozen so a definition, once validated, cannot drift from what was checked.
YAML keys are camelCase (`maxConcurrency`); Python uses snake_case; both are accepted.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

API_VERSION: Final = "actorflow/v1"

_NAME_RE = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
_VERSION_RE = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,30})?$"
_NODE_ID_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_HANDLER_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_memory(value: Any) -> int | None:
    """Accept bytes as a number or Kubernetes-style quantities ('512Mi', '2Gi', '1GB')."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _MEMORY_UNITS:
        raise ValueError(f"not a memory size: {value!r} (use bytes or e.g. 512Mi, 2Gi)")
    return int(float(m.group(1)) * _MEMORY_UNITS[m.group(2).lower()])


def parse_duration(value: Any) -> float | None:
    """Accept seconds as a number or '250ms', '30s', '5m', '1h30m'."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
        if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
            raise ValueError(f"not a duration: {value!r} (use seconds or e.g. 30s, 5m, 1h30m)")
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {value!r}")
    return seconds


Name = Annotated[str, Field(pattern=_NAME_RE)]
Version = Annotated[str, BeforeValidator(str), Field(pattern=_VERSION_RE)]
NodeId = Annotated[str, Field(pattern=_NODE_ID_RE)]
Memory = Annotated[Annotated[int, Field(ge=0)] | None, BeforeValidator(parse_memory)]
Duration = Annotated[float | None, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class Metadata(_Model):
    name: Name
    version: Version = "1"
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class Resources(_Model):
    """What one replica reserves on its Ray node; Ray's scheduler enforces placement."""

    cpus: float = Field(default=1.0, ge=0)
    gpus: float = Field(default=0.0, ge=0)
    memory: Memory = None
    custom: dict[str, float] = Field(default_factory=dict)


class FunctionSpec(_Model):
    handler: str
    resources: Resources = Field(default_factory=Resources)
    replicas: int = Field(default=1, ge=1, le=1024)
    max_concurrency: int = Field(default=1, ge=1, le=10_000)
    timeout: Duration = None
    code_dir: str | None = None

    @field_validator("handler")
    @classmethod
    def _handler_path(cls, v: str) -> str:
        if not _HANDLER_RE.match(v):
            raise ValueError(f"handler must be 'module:callable', got {v!r}")
        return v


class Function(_Model):
    """A Python callable, registered once, served by a pool of replica actors."""

    api_version: Literal["actorflow/v1"] = API_VERSION
    kind: Literal["Function"] = "Function"
    metadata: Metadata
    spec: FunctionSpec

    @property
    def ref(self) -> str:
        return f"{self.metadata.name}@{self.metadata.version}"


InputType = Literal["string", "integer", "number", "boolean", "object", "array", "any"]


class InputSpec(_Model):
    """A declared workflow input; required unless it has a default (or says otherwise)."""

    type: InputType = "any"
    default: JsonValue = None
    required: bool = True
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _required_unless_defaulted(cls, data: Any) -> Any:
        # Decided once, from what the author wrote, and stored: a dump/load round trip
        # cannot confuse "default: null" with "no default".
        if isinstance(data, dict) and "required" not in data:
            return {**data, "required": "default" not in data}
        return data


def _parse_function_ref(value: Any) -> Any:
    if isinstance(value, str) and "@" not in value:
        return f"{value}@latest"
    return value


FunctionRef = Annotated[
    str,
    BeforeValidator(_parse_function_ref),
    Field(pattern=_NAME_RE[:-1] + r"@[A-Za-z0-9][A-Za-z0-9._-]{0,30}$"),
]


class NodeSpec(_Model):
    """One step of the DAG: calls `function` once, or once per item of `for_each`.

    `inputs` values are JSON literals; a string `${{ expr }}` is a CEL expression over
    `inputs`, `nodes.<id>.output`, `run` and, inside `for_each`, `item` and `index`.
    """

    id: NodeId
    function: FunctionRef
    needs: list[NodeId] = Field(default_factory=list)
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    for_each: str | None = None


class WorkflowSpec(_Model):
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    nodes: list[NodeSpec] = Field(min_length=1)
    outputs: dict[str, JsonValue] = Field(default_factory=dict)


class Workflow(_Model):
    """A DAG of nodes; validated as a graph and compiled into a plan before it runs."""

    api_version: Literal["actorflow/v1"] = API_VERSION
    kind: Literal["Workflow"] = "Workflow"
    metadata: Metadata
    spec: WorkflowSpec

    @property
    def ref(self) -> str:
        return f"{self.metadata.name}@{self.metadata.version}"


Definition = Annotated[Function | Workflow, Field(discriminator="kind")]


def split_ref(ref: str) -> tuple[str, str]:
    """'name@version' -> (name, version); a bare name means the latest version."""
    name, _, version = ref.partition("@")
    return name, version or "latest"
