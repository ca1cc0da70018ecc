"""Definition models: what a user writes in YAML (camelCase) or builds in Python.

The models are frozen so a definition, once validated, cannot drift from what was checked.
YAML keys are camelCase (`maxConcurrency`); Python uses snake_case; both are accepted.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from actorflow.definitions.errors import ExpressionError
from actorflow.definitions.expressions import Expression, Template, strip_braces
from actorflow.definitions.priorities import DEFAULT_PRIORITY, Priority
from actorflow.definitions.schemas import check_schema
from actorflow.definitions.subjects import check_trigger_subject

API_VERSION: Final = "actorflow/v1"

_NAME_RE = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
_VERSION_RE = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,30})?$"
_NODE_ID_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62}){0,15}$"
"""A node id; the dotted form (``prep.fetch``) names a node of a template group, and only
template expansion writes it (the graph checker refuses it in what a user writes)."""
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


class _Definition(_Model):
    """What every kind shares: the API version, the metadata and a ``name@version`` ref.
    (Subclasses narrow `kind`; pydantic keeps the field where the base declared it.)"""

    api_version: Literal["actorflow/v1"] = API_VERSION
    kind: str
    metadata: Metadata

    @property
    def ref(self) -> str:
        return f"{self.metadata.name}@{self.metadata.version}"


class Resources(_Model):
    """What one replica reserves on its Ray node; Ray's scheduler enforces placement."""

    cpus: float = Field(default=1.0, ge=0)
    gpus: float = Field(default=0.0, ge=0)
    memory: Memory = None
    custom: dict[str, float] = Field(default_factory=dict)


class RetryPolicy(_Model):
    """How often and how patiently a failed step is tried again.

    The delay before attempt n+1 is ``initial_delay * backoff**(n-1)``, capped at
    ``max_delay``. Errors whose code or exception type is listed in ``non_retryable`` (and
    errors raised with ``retryable=False``) are never retried.
    """

    max_attempts: int = Field(default=1, ge=1, le=1000)
    initial_delay: Annotated[float, BeforeValidator(parse_duration)] = 1.0
    backoff: float = Field(default=2.0, ge=1.0, le=100.0)
    max_delay: Annotated[float, BeforeValidator(parse_duration)] = 300.0
    non_retryable: list[str] = Field(default_factory=list)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based) before the next one."""
        return min(self.initial_delay * self.backoff ** max(attempt - 1, 0), self.max_delay)

    def allows(self, attempt: int, code: str, error_type: str, retryable: bool) -> bool:
        if not retryable or attempt >= self.max_attempts:
            return False
        short_type = error_type.rpartition(".")[2]
        return not {code, error_type, short_type} & set(self.non_retryable)


def _fixed_replicas(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return {"min": value, "max": value}
    return value


class Replicas(_Model):
    """How many replicas serve a function: fixed (``replicas: 2``) or autoscaled between
    ``min`` and ``max`` from its pending + in-flight tasks (``min: 0`` lets an idle pool
    disappear; the first task then waits durably in the queue for a cold start).

    The autoscaler aims at ``target`` tasks per replica (default: the function's
    ``maxConcurrency``); it adds replicas once the need has lasted ``upDelay`` and removes
    them once it has been gone for ``downDelay`` (draining their in-flight tasks first).
    """

    min: int = Field(default=1, ge=0, le=1024)
    max: int = Field(default=1, ge=1, le=1024)
    target: int | None = Field(default=None, ge=1, le=100_000)
    up_delay: Annotated[float, BeforeValidator(parse_duration)] = 0.0
    down_delay: Annotated[float, BeforeValidator(parse_duration)] = 30.0

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class FunctionSpec(_Model):
    handler: str
    resources: Resources = Field(default_factory=Resources)
    node_labels: dict[str, str] = Field(default_factory=dict)
    """Run replicas only on Ray nodes carrying these labels (``ray start --labels``)."""
    runtime_env: Annotated[str, Field(pattern=_NAME_RE[:-1] + r"@" + _VERSION_RE[1:])] | None = None
    """``name@version`` of a RuntimeEnv: its packages, variables and resource level."""
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    replicas: Annotated[Replicas, BeforeValidator(_fixed_replicas)] = Field(
        default_factory=Replicas
    )
    max_concurrency: int = Field(default=1, ge=1, le=10_000)
    timeout: Duration = None
    code_dir: str | None = None
    input_schema: Annotated[dict[str, JsonValue], AfterValidator(check_schema)] | None = None
    """A JSON Schema its inputs must fit, checked before each call (`INPUT_INVALID`)."""
    output_schema: Annotated[dict[str, JsonValue], AfterValidator(check_schema)] | None = None
    """A JSON Schema its output must fit, checked after each call (`OUTPUT_INVALID`)."""

    @property
    def target_per_replica(self) -> int:
        return self.replicas.target or self.max_concurrency

    @field_validator("handler")
    @classmethod
    def _handler_path(cls, v: str) -> str:
        if not _HANDLER_RE.match(v):
            raise ValueError(f"handler must be 'module:callable', got {v!r}")
        return v


class Function(_Definition):
    """A Python callable, registered once, served by a pool of replica actors."""

    kind: Literal["Function"] = "Function"
    spec: FunctionSpec


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


_SIGNAL_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"


class WaitSpec(_Model):
    """Wait for a signal: a message on ``af.signal.<signal>.<key>`` (the key, rendered when
    the wait starts, correlates it with this run). Its JSON payload is the node's output;
    with a `schema`, payloads that do not match it are refused and the wait goes on."""

    signal: Annotated[str, Field(pattern=_SIGNAL_RE)]
    key: str = ""
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    timeout: Duration = None


class ApprovalSpec(_Model):
    """Wait for a person: `actorflow runs approve` (or the SDK / a control message) with an
    input that must match `schema`; the input is the node's output."""

    guidance: str = ""
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    timeout: Duration = None


NodeKind = Literal[
    "function",
    "shell",
    "http",
    "sql",
    "workflow",
    "sleep",
    "wait",
    "approval",
    "value",
    "template",
    "fail",
]
NODE_KINDS: Final[tuple[NodeKind, ...]] = get_args(NodeKind)
"""The node fields of which a node has exactly one."""


class ShellSpec(_Model):
    """A command run on a function pool. `argv` is a list, never a shell string: a templated
    value is always one argument, passed verbatim (a user who wants a shell writes
    ``argv: [sh, -c, ...]``). Output ``{exitCode, stdout, stderr}``, or stdout parsed as
    JSON with ``output: json``; an exit code n != 0 fails the node with ``EXIT_<n>``."""

    argv: list[JsonValue] = Field(min_length=1)
    env: dict[str, JsonValue] = Field(default_factory=dict)
    cwd: str | None = None
    output: Literal["text", "json"] = "text"


class SecretRef(_Model):
    """A secret (an HTTP header value, a database password) kept out of definitions and
    histories: read by the replica, at the moment of the call, from an environment
    variable or a file (e.g. a mounted secret)."""

    from_env: str | None = None
    from_file: str | None = None
    prefix: str = ""  # e.g. "Bearer "

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.from_env is None) == (self.from_file is None):
            raise ValueError("a secret reads exactly one of fromEnv, fromFile")
        return self


class HttpSpec(_Model):
    """One HTTP call. Output ``{status, headers, body}`` (the body JSON-decoded when it is
    JSON). A response for which `success_condition` (CEL over ``response``; default a 2xx
    status) is false fails with ``HTTP_<status>`` — retryable when the status is in
    `retry_on` —, a timeout with ``TIMEOUT``, an unreachable server with
    ``HTTP_UNREACHABLE``."""

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str = Field(min_length=1)
    headers: dict[str, str | SecretRef] = Field(default_factory=dict)
    body: JsonValue = None
    timeout: Duration = 30.0
    success_condition: str = "response.status >= 200 && response.status < 300"
    retry_on: list[int] = Field(default_factory=lambda: [429, 500, 502, 503, 504])

    @field_validator("success_condition")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            Expression.compile(strip_braces(v))
        except ExpressionError as exc:
            raise ValueError(f"successCondition does not compile: {exc}") from None
        return v


_BIND_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_EXPR_OPEN = "${{"


def _sql_url(value: str) -> str:
    """A SQLAlchemy URL of a known dialect and without a password. Messages never quote
    the URL: it may hold the very password being refused."""
    if _EXPR_OPEN in value:
        raise ValueError("a connection URL is not templated")
    try:
        url = make_url(value)
    except sa_exc.ArgumentError:
        raise ValueError(
            "not a SQLAlchemy URL (e.g. postgresql+psycopg://app@127.0.0.1:5432/db, "
            "sqlite:////tmp/app.db)"
        ) from None
    if url.password is not None:
        raise ValueError(
            "the URL holds a password, which would be stored in clear: remove it and give "
            "`password: {fromEnv: NAME}` or `{fromFile: PATH}`"
        )
    try:
        url.get_dialect()
    except sa_exc.NoSuchModuleError:
        raise ValueError(f"unknown SQL dialect {url.drivername!r}") from None
    return value


class ConnectionSpec(_Model):
    """Where a database is and how to log in: a SQLAlchemy `url` without a password, and
    the password as a reference (`SecretRef`) the replica reads when a step runs."""

    model_config = ConfigDict(hide_input_in_errors=True)

    url: Annotated[str, Field(min_length=1), AfterValidator(_sql_url)]
    password: SecretRef | None = None

    @model_validator(mode="after")
    def _password_is_used(self) -> ConnectionSpec:
        if self.password is not None and make_url(self.url).get_backend_name() == "sqlite":
            raise ValueError("SQLite takes no password: leave `password` out")
        return self


class Connection(_Definition):
    """A database that `sql` nodes name (kind ``Connection``). Its password is never part
    of it: ``password: {fromEnv: DB_PASSWORD}`` or ``{fromFile: /run/secrets/db}`` is read
    by the controller at apply (it must exist there) and by the replica at each call."""

    model_config = ConfigDict(hide_input_in_errors=True)

    kind: Literal["Connection"] = "Connection"
    spec: ConnectionSpec


class SqlSpec(_Model):
    """One SQL statement on a `Connection`, in one transaction (committed when it
    succeeds, rolled back when it fails). `params` values are bound (``:name`` in the
    query), never spliced into its text; the query itself is not templated. Output: the
    rows as a list of objects, at most `max_rows` (more are cut off, and the step's log
    says so), or ``{"rowCount": n}`` for a statement that returns no rows."""

    connection: FunctionRef
    """``name`` (its latest version when a run starts) or ``name@version``."""
    query: str
    params: dict[Annotated[str, Field(pattern=_BIND_RE)], JsonValue] = Field(default_factory=dict)
    max_rows: int = Field(default=1000, ge=1, le=1_000_000)

    @field_validator("query")
    @classmethod
    def _not_templated(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the query is empty")
        if _EXPR_OPEN in v:
            raise ValueError(
                "the query is not templated: bind values as :name and give them in params"
            )
        return v

    @model_validator(mode="after")
    def _binds_match(self) -> SqlSpec:
        binds = set(text(self.query)._bindparams)  # what SQLAlchemy will bind, ':x' only
        missing = sorted(binds - set(self.params))
        unused = sorted(set(self.params) - binds)
        if missing:
            raise ValueError(f"the query binds {', '.join(missing)}, which params lack")
        if unused:
            raise ValueError(f"params {', '.join(unused)} are not bound in the query (:name)")
        return self


BuiltinKind = Literal["shell", "http", "sql", "workflow"]
_BUILTIN_CONCURRENCY: Final = {"shell": 8, "http": 64, "sql": 16, "workflow": 1000}
_BUILTIN_MODULES: Final = {
    "shell": "shell",
    "http": "http",
    "sql": "sql",
    "workflow": "subworkflow",
}


def builtin_function(kind: BuiltinKind, resources: Resources) -> Function:
    """The pool that `kind` nodes with these `resources` share: one implicit Function per
    kind and shape, registered when a workflow that needs it is applied (warm replicas
    serve every such node; an idle pool scales to zero)."""
    shape = hashlib.sha256(resources.model_dump_json().encode()).hexdigest()[:10]
    return Function.model_validate(
        {
            "metadata": {
                "name": f"af-{kind}-{shape}",
                "version": "1",
                "description": f"{kind} steps (implicit)",
            },
            "spec": {
                "handler": f"actorflow.actors.functions.{_BUILTIN_MODULES[kind]}:run",
                "resources": resources.model_dump(),
                "replicas": {"min": 0, "max": 4, "target": 8, "downDelay": "5m"},
                "maxConcurrency": _BUILTIN_CONCURRENCY[kind],
            },
        }
    )


class CompensationSpec(_Model):
    """The step that undoes a node's effect (a saga's compensation): exactly one of a
    `function` (given `inputs`; by default ``{inputs, output}`` of the compensated step), a
    `shell` command, an `http` call or a `sql` statement. Its expressions also see ``step.inputs``,
    ``step.output`` and ``step.index`` — the compensated step's rendered inputs, its output
    and its forEach item's index. `retry` is its own (default: the default policy)."""

    function: FunctionRef | None = None
    shell: ShellSpec | None = None
    http: HttpSpec | None = None
    sql: SqlSpec | None = None
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    resources: Resources | None = None

    @model_validator(mode="after")
    def _one_step(self) -> CompensationSpec:
        kinds = [k for k in ("function", "shell", "http", "sql") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "compensate needs exactly one of function, shell, http, sql"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        if self.function is None and self.inputs:
            raise ValueError(f"a {kinds[0]} compensation takes its values in {kinds[0]}")
        if self.function is not None and self.resources is not None:
            raise ValueError("only shell, http and sql compensations take resources")
        return self

    @property
    def builtin(self) -> BuiltinKind | None:
        kinds: tuple[BuiltinKind, ...] = ("shell", "http", "sql")
        return next((k for k in kinds if getattr(self, k) is not None), None)

    @property
    def function_ref(self) -> str:
        if self.builtin is not None:
            return builtin_function(self.builtin, self.resources or Resources(cpus=0.1)).ref
        assert self.function is not None
        return self.function


NeedKind = Literal["succeeded", "failed", "skipped", "finished"]


class Need(_Model):
    """A dependency on how another node ended: ``{node: a, on: failed}`` runs the node only
    when `a` failed for good (an error branch); ``finished``: however it ended. A plain
    node id is a need on its success, and is written back that way."""

    node: NodeId
    on: NeedKind = "succeeded"


def _need_of(value: object) -> object:
    return {"node": value} if isinstance(value, str) else value


def _plain_need(need: Need) -> str | dict[str, str]:
    return need.node if need.on == "succeeded" else {"node": need.node, "on": need.on}


NeedItem = Annotated[Need, BeforeValidator(_need_of), PlainSerializer(_plain_need)]


class NodeSpec(_Model):
    """One step of the DAG. Exactly one of: `function` (called once, or once per item of
    `for_each`), `sleep` (a durable timer), `wait` (a signal), `approval` (a person).

    `inputs` values are JSON literals; a string `${{ expr }}` is a CEL expression over
    `inputs`, `nodes.<id>.output` / `.status` / `.error`, `run` and, inside `for_each`,
    `item` and `index`. `when` (one such expression) false skips the node; `needs` items
    are node ids (on success) or `Need`s; `continue_on: failed` lets the node's
    dependants run as if it succeeded when it fails.
    """

    id: NodeId
    function: FunctionRef | None = None
    shell: ShellSpec | None = None
    http: HttpSpec | None = None
    sql: SqlSpec | None = None
    workflow: FunctionRef | None = None
    """``name@version`` (or a bare name / ``@latest``, resolved when the run starts): a child
    run of that workflow, given `inputs`; its outputs are the node's output."""
    on_parent_stop: Literal["cancel", "terminate", "abandon"] = "cancel"
    """A `workflow` node: what its running child does when this run is paused, cancelled
    or terminated — the same (``cancel``: pause / cancel; ``terminate``: terminate), or
    nothing (``abandon``)."""
    sleep: Duration = None
    wait: WaitSpec | None = None
    approval: ApprovalSpec | None = None
    value: JsonValue = None
    """A value computed from its expressions when the node's needs end: no task, no
    replica (e.g. to reshape outputs, or a template group's inputs and outputs). Not null:
    a node that computes nothing writes ``value: {}``."""
    template: FunctionRef | None = None
    """``name@version`` of a `StepTemplate`, expanded into this workflow when a run starts."""
    fail: str | None = None
    """A message (expressions allowed): when its needs end, the node fails with error code
    ``FAIL`` and this message, as a step would (Fission's ``fail``; an explicit dead end)."""
    resources: Resources | None = None
    """A shell, HTTP or SQL node's replica: what it reserves (default: a tenth of a CPU)."""
    needs: list[NeedItem] = Field(default_factory=list)
    when: str | None = None
    continue_on: Literal["failed"] | None = None
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    for_each: str | None = None
    retry: RetryPolicy | None = None
    timeout: Duration = None
    """All attempts together (the function's `timeout` bounds one); past it: TIMEOUT."""
    compensate: CompensationSpec | None = None
    """What undoes this node's effect when the run fails for good (or is cancelled with
    compensation): run once per completed step, in reverse order of completion."""
    priority: Priority | None = None
    """0-9: this node's tasks wait in their pool's backlog at this priority instead of the
    run's (see `WorkflowSpec.priority`)."""

    @property
    def need_kinds(self) -> dict[str, NeedKind]:
        """Each need's node id and what it waits for."""
        return {n.node: n.on for n in self.needs}

    @property
    def need_ids(self) -> list[str]:
        return [n.node for n in self.needs]

    @model_validator(mode="after")
    def _one_kind(self) -> NodeSpec:
        kinds = [k for k in NODE_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"a node needs exactly one of {', '.join(NODE_KINDS)}"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        runs_task = kinds[0] in ("function", "shell", "http", "sql", "workflow")
        if kinds[0] == "template":
            if self.for_each or self.retry or self.timeout is not None or self.continue_on:
                raise ValueError(
                    "a template node takes needs, when and inputs only (forEach, retry, "
                    "timeout and continueOn belong on the nodes inside it, or use a "
                    "sub-workflow)"
                )
        elif not runs_task and (
            self.for_each or self.inputs or self.retry or self.timeout is not None
        ):
            raise ValueError(f"a {kinds[0]} node takes no inputs, forEach, retry or timeout")
        if self.compensate is not None and not runs_task:
            raise ValueError(f"a {kinds[0]} node has no effect to compensate")
        if kinds[0] in ("shell", "http", "sql") and self.inputs:
            raise ValueError(f"a {kinds[0]} node takes its values in {kinds[0]}, not inputs")
        if self.resources is not None and kinds[0] not in ("shell", "http", "sql"):
            raise ValueError(
                "only shell, http and sql nodes take resources (a function has its own)"
            )
        if self.priority is not None and not runs_task:
            raise ValueError(
                "only function, shell, http, sql and workflow nodes take a priority (it orders "
                "their tasks in a pool's backlog)"
            )
        return self

    @property
    def builtin(self) -> BuiltinKind | None:
        if self.shell is not None:
            return "shell"
        if self.http is not None:
            return "http"
        if self.sql is not None:
            return "sql"
        return "workflow" if self.workflow is not None else None

    @property
    def function_ref(self) -> str | None:
        """The function the node's tasks go to: its own, or its built-in kind's pool."""
        if self.builtin is not None:
            return builtin_function(self.builtin, self.resources or Resources(cpus=0.1)).ref
        return self.function

    @property
    def kind(self) -> NodeKind:
        kind: NodeKind = next(k for k in NODE_KINDS if getattr(self, k) is not None)
        return kind


ErrorAction = Literal["retry", "skip", "fail", "manual", "remediate"]


class ErrorPolicy(_Model):
    """What a workflow does when a step fails with a given error code.

    ``retry``: try again under ``retry`` (else the node's / function's policy), then
    interrupt. ``skip``: the node succeeds with a null output and the run goes on. ``fail``:
    interrupt at once. ``manual``: interrupt and show ``guidance`` to the operator.
    ``remediate``: run ``function`` with the error, then ``then``: retry the step or continue
    past it (its output becomes the remediation's output).
    """

    action: ErrorAction
    retry: RetryPolicy | None = None
    guidance: str = ""
    function: FunctionRef | None = None
    then: Literal["retry", "continue"] = "retry"

    @model_validator(mode="after")
    def _remediation_names_a_function(self) -> ErrorPolicy:
        if self.action == "remediate" and not self.function:
            raise ValueError("action 'remediate' needs a 'function' to run")
        return self


HookPoint = Literal["before_run", "after_run", "before_node", "after_node"]


class HookSpec(_Model):
    """Call `call` at a point of the run's life: ``module:callable`` (imported in the run
    actor) or a function ``name@version`` (its handler, run there too). It gets one dict
    (point, run_id, workflow, version, node, status, error, outputs); a hook that raises
    or times out is recorded on the run, never dropped, and never stops the run."""

    on: HookPoint
    call: str
    nodes: list[NodeId] = Field(default_factory=list)  # node hooks: only these (none: all)

    @field_validator("call")
    @classmethod
    def _callable_or_function(cls, v: str) -> str:
        if not (_HANDLER_RE.match(v) or re.match(_NAME_RE[:-1] + r"@[A-Za-z0-9._-]+$", v)):
            raise ValueError(f"call must be 'module:callable' or 'function@version', got {v!r}")
        return v


class Concurrency(_Model):
    """At most `limit` unfinished runs per key: the others wait (PENDING), in start order.

    `key` is a literal or a template over ``inputs`` and ``run`` (``"${{ inputs.cluster }}"``),
    rendered once when a run starts and recorded. Keys are counted per `group`: the
    workflow's own name unless set — workflows naming the same group share their keys (a
    deploy and an upgrade of one cluster exclude each other). A run holds its place until it
    finishes (SUCCEEDED, INTERRUPTED, TERMINATED); a PAUSED or WAITING run keeps it.
    """

    key: str = Field(min_length=1)
    limit: int = Field(default=1, ge=1, le=10_000)
    group: Name | None = None

    @field_validator("key")
    @classmethod
    def _key_compiles(cls, v: str) -> str:
        try:
            Template.compile(v)
        except ExpressionError as exc:
            raise ValueError(f"expression {exc.expression!r}: {exc.reason}") from None
        return v


class WorkflowSpec(_Model):
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    nodes: list[NodeSpec] = Field(min_length=1)
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    on_error: dict[str, ErrorPolicy] = Field(default_factory=dict)
    """Error code → policy; the key ``default`` applies to codes not listed."""
    hooks: list[HookSpec] = Field(default_factory=list)
    timeout: Duration = None
    """The whole run, from its start (or its last resume); past it: RUN_TIMEOUT."""
    concurrency: Concurrency | None = None
    """One run at a time (or `limit`) per key; see `Concurrency`."""
    priority: Priority = DEFAULT_PRIORITY
    """0-9 (9 most urgent): where this workflow's tasks wait in a busy pool's backlog —
    higher ones start first. A run may be started at another; a node may set its own."""


class Workflow(_Definition):
    """A DAG of nodes; validated as a graph and compiled into a plan before it runs."""

    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec


class TemplateSpec(_Model):
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    nodes: list[NodeSpec] = Field(min_length=1)
    outputs: dict[str, JsonValue] = Field(default_factory=dict)


class StepTemplate(_Definition):
    """A reusable group of nodes (kind ``Template``): declared inputs, nodes, outputs.

    A workflow node ``template: name@version`` with `inputs` is expanded, when a run starts,
    into the template's nodes with ids prefixed by the node's (``prep.fetch``), plus two
    value nodes: ``prep.inputs`` (the inputs given, gated by the node's `needs` and
    `when`) and ``prep`` (the template's outputs, which the rest of the workflow reads as
    ``nodes.prep.output``). Inside, ``inputs.x`` is the template's input and
    ``nodes.fetch`` its own node; the id ``inputs`` is reserved there.
    """

    kind: Literal["Template"] = "Template"
    spec: TemplateSpec


PlacementStrategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]


class Bundle(Resources):
    """``count`` identical placement-group bundles."""

    count: int = Field(default=1, ge=1, le=256)


class ResourceLevel(_Model):
    """A named block of capacity reserved once (a Ray placement group) and shared by every
    function whose environment names it, so their replicas start inside capacity that is
    already theirs instead of competing for the cluster."""

    name: Name
    strategy: PlacementStrategy = "PACK"
    bundles: list[Bundle] = Field(min_length=1)
    node_labels: dict[str, str] = Field(default_factory=dict)

    def flat_bundles(self) -> list[Resources]:
        return [
            Resources.model_validate(b.model_dump(exclude={"count"}))
            for b in self.bundles
            for _ in range(b.count)
        ]


class RuntimeEnvSpec(_Model):
    pip: list[str] = Field(default_factory=list)
    env_vars: dict[str, str] = Field(default_factory=dict)
    working_dir: str | None = None
    py_modules: list[str] = Field(default_factory=list)
    level: ResourceLevel | None = None


class RuntimeEnv(_Definition):
    """``name@version`` → what a replica's process gets (packages, variables, code) and
    where it runs (a resource level). Moving a function up or down a level is naming
    another version of its environment."""

    kind: Literal["RuntimeEnv"] = "RuntimeEnv"
    spec: RuntimeEnvSpec = Field(default_factory=RuntimeEnvSpec)


def split_ref(ref: str) -> tuple[str, str]:
    """'name@version' -> (name, version); a bare name means the latest version."""
    name, _, version = ref.partition("@")
    return name, version or "latest"


# --- triggers and the event library -------------------------------------------------------
MissedPolicy = Literal["skip", "once", "catchup"]
LifecycleOn = Literal["started", "succeeded", "failed", "interrupted", "terminated", "compensated"]


def _check_subject(value: str) -> str:
    problem = check_trigger_subject(value)
    if problem:
        raise ValueError(problem)
    return value


class ScheduleSource(_Model):
    """A cron expression in a time zone, or a fixed period (`every`). Each instant fires at
    most one run; after downtime, `missed` says what happens to the instants that passed:
    ``skip`` them, run ``once`` (the latest), or ``catchup`` (each, oldest first, at most
    `max_catchup`)."""

    cron: str | None = None
    timezone: str = "UTC"
    every: Duration = None
    missed: MissedPolicy = "skip"
    max_catchup: int = Field(default=100, ge=1, le=10_000)

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleSource:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule needs exactly one of cron, every")
        if self.every is not None and self.every < 1:
            raise ValueError("every must be at least 1s")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"not a cron expression: {self.cron!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self


class WebhookSource(_Model):
    """``POST /hooks/<trigger>`` on the controller's HTTP server. With a `secret`, the body
    must be signed: header ``X-Actorflow-Signature: sha256=<hex HMAC-SHA256(secret, body)>``
    (``X-Hub-Signature-256`` is accepted too)."""

    secret: str | None = None


class LifecycleSource(_Model):
    """Another workflow's (or one of its nodes') lifecycle events, e.g. start `report`
    when `etl` succeeds; the event (`RunLifecycle` / `NodeLifecycle`) is the payload."""

    workflow: Name
    node: NodeId | None = None
    on: list[LifecycleOn] = Field(default_factory=lambda: ["succeeded"], min_length=1)  # type: ignore[arg-type]


class TriggerSource(_Model):
    """Exactly one of: a NATS `subject` pattern, a `schedule`, a `webhook`, a `lifecycle`."""

    subject: Annotated[str, BeforeValidator(_check_subject)] | None = None
    schedule: ScheduleSource | None = None
    webhook: WebhookSource | None = None
    lifecycle: LifecycleSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TriggerSource:
        kinds = [k for k in ("subject", "schedule", "webhook", "lifecycle") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError(
                "a source needs exactly one of subject, schedule, webhook, lifecycle"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        return self

    @property
    def kind(self) -> Literal["subject", "schedule", "webhook", "lifecycle"]:
        if self.subject is not None:
            return "subject"
        if self.schedule is not None:
            return "schedule"
        return "webhook" if self.webhook is not None else "lifecycle"


class TriggerSpec(_Model):
    """What starts which workflow. `filter` is a CEL expression (bare or ``${{ }}``) over
    ``event`` (the payload), ``headers``, ``subject``, ``event_id`` and ``trigger``;
    `inputs` maps the same names to the workflow's inputs."""

    source: TriggerSource
    workflow: FunctionRef  # name, name@version or name@latest
    filter: str | None = None
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    event_type: Name | None = None
    enabled: bool = True
    max_concurrency: int = Field(default=100, ge=1, le=100_000)
    max_payload: Annotated[int, BeforeValidator(parse_memory), Field(ge=1)] = 1024 * 1024

    @field_validator("filter")
    @classmethod
    def _filter_compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                Expression.compile(strip_braces(v))
            except ExpressionError as exc:
                raise ValueError(f"expression {exc.expression!r}: {exc.reason}") from None
        return v

    @field_validator("inputs")
    @classmethod
    def _inputs_compile(cls, v: dict[str, JsonValue]) -> dict[str, JsonValue]:
        try:
            Template.compile(v)
        except ExpressionError as exc:
            raise ValueError(f"expression {exc.expression!r}: {exc.reason}") from None
        return v


class Trigger(_Definition):
    """Turns events into runs: one run per event, the event id being the idempotency key."""

    kind: Literal["Trigger"] = "Trigger"
    spec: TriggerSpec


class EventTypeSpec(_Model):
    """A declared event: the subject pattern it travels on and its payload's JSON schema."""

    subject: Annotated[str, BeforeValidator(_check_subject)]
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")

    @field_validator("json_schema")
    @classmethod
    def _schema_is_valid(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft202012Validator.check_schema(v)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a JSON schema: {exc.message}") from None
        return v


class EventType(_Definition):
    """A declared event type of the event library."""

    kind: Literal["EventType"] = "EventType"
    spec: EventTypeSpec


AnyDefinition = Function | Workflow | StepTemplate | RuntimeEnv | Trigger | EventType | Connection

Definition = Annotated[AnyDefinition, Field(discriminator="kind")]
