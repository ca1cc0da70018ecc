"""The one error tree of actorflow.

Every error the engine raises on purpose derives from `ActorflowError`, so callers can
catch the family they care about and still print one clear line (`str(err)`)::

    ActorflowError
    ├── DefinitionError          a definition is malformed: file, line, field per issue
    │   └── ExpressionError      an expression does not compile or evaluate
    ├── NotFoundError            an unknown workflow, function, run, trigger …
    ├── InUseError               a definition other registered definitions still name
    ├── InputError               workflow inputs missing, unknown or of the wrong type
    ├── PayloadError             a value that cannot travel (not JSON, too large)
    ├── DecodeError              bytes on a subject that are no message of the wire contract
    ├── ClusterUnavailableError  Ray or NATS cannot be reached or started
    ├── FunctionPoolError        a function's pool cannot serve (handler, runtime env)
    │   └── PlacementError       a function asks for capacity no node of the cluster has
    ├── RunFailedError           a run ended interrupted; carries the failing node's error
    ├── WaitTimeoutError         a wait for a run ran out of time (the run goes on)
    ├── ControlError             a control request that does not apply to the run as it is
    ├── FencedError              a stale run-actor incarnation tried to write
    ├── TriggerError             a trigger operation that cannot be done (e.g. webhook server)
    │   └── EventRejectedError   an event a trigger refuses: not JSON, schema, size, signature
    ├── RemoteApiError           the REST API (``ACTORFLOW_API_URL``) refused a request
    │   └── AuthError            … because of the token (401) or the caller's roles (403)
    ├── UnsupportedError         an operation the client's connection cannot carry (a method
    │                            the REST API does not offer)
    └── StepError                raised by handlers: an error code a workflow can act on

Through the REST API, the API's answers come back as these same classes (a 404 is a
`NotFoundError`, a 409 a `ControlError` or `InUseError` …); `RemoteApiError` is for the
answers no other class describes.

How a step failed travels as an `ErrorInfo` whose ``code`` is a free string: a handler's own
`StepError` code, or one of the engine's, which are the members of `ErrorCode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ActorflowError(Exception):
    """Root of every error actorflow raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (Ray pickles them from actors to callers);
        # subclasses take structured arguments, so rebuild from args + attributes.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[ActorflowError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


@dataclass(frozen=True)
class DefinitionIssue:
    """One problem in a definition, located as precisely as the source allows."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file or "<definition>"
        if self.line is not None:
            where += f":{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class DefinitionError(ActorflowError):
    """A definition is malformed; `issues` lists every problem found, not only the first."""

    def __init__(self, issues: list[DefinitionIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))

    @classmethod
    def single(
        cls,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> DefinitionError:
        return cls([DefinitionIssue(message, file=file, line=line, field=field)])


class ExpressionError(DefinitionError):
    """An expression failed to compile (at apply time) or to evaluate (at run time)."""

    def __init__(self, expression: str, reason: str, *, field: str | None = None) -> None:
        self.expression = expression
        self.reason = reason
        shown = (
            expression
            if len(expression) <= 200
            else f"{expression[:200]}… ({len(expression)} chars)"
        )
        reason = reason if len(reason) <= 1000 else f"{reason[:1000]}…"
        super().__init__([DefinitionIssue(f"expression {shown!r}: {reason}", field=field)])


class NotFoundError(ActorflowError):
    """Something named does not exist: `kind` is workflow, function or run."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name!r} not found")


class FunctionPoolError(ActorflowError):
    """A function's pool cannot serve: its handler does not import, or its runtime
    environment cannot be set up."""


class PlacementError(FunctionPoolError):
    """A function or resource level asks for capacity no node of the cluster has: refused
    when it is applied, instead of replicas that wait for ever."""


class InUseError(ActorflowError):
    """A definition cannot be deleted while other registered definitions name it."""


class InputError(ActorflowError):
    """Workflow inputs do not match the workflow's declared inputs."""


class PayloadError(ActorflowError):
    """A value cannot travel on the wire (not JSON-serialisable, or too large)."""


class DecodeError(ActorflowError):
    """Bytes on a subject do not form a known message of the wire contract."""


class ClusterUnavailableError(ActorflowError):
    """Ray or NATS cannot be reached (or the embedded one cannot be started)."""

    def __init__(self, what: str, address: str, reason: str) -> None:
        self.what = what
        self.address = address
        self.reason = reason
        super().__init__(f"{what} unavailable at {address}: {reason}")


class RunFailedError(ActorflowError):
    """A run stopped without succeeding; `error` is the failing node's error record."""

    def __init__(self, run_id: str, status: str, node: str | None, error: Any) -> None:
        self.run_id = run_id
        self.status = status
        self.node = node
        self.error = error
        detail = f" at node {node!r}" if node else ""
        msg = getattr(error, "message", None) or str(error or "")
        code = getattr(error, "code", None)
        code_part = f" [{code}]" if code else ""
        super().__init__(f"run {run_id} {status.lower()}{detail}{code_part}: {msg}")


class WaitTimeoutError(ActorflowError):
    """Waiting for a run ran out of time; the run itself is unaffected."""


class ControlError(ActorflowError):
    """Pause / resume / cancel / terminate / retry refused: the run is not in a state where
    that means anything (e.g. resuming a SUCCEEDED run). The run is unchanged."""


class FencedError(ActorflowError):
    """A stale run-actor incarnation tried to append; another incarnation owns the run."""


class TriggerError(ActorflowError):
    """A trigger or event operation that cannot be carried out."""


class EventRejectedError(TriggerError):
    """An event a trigger refuses (counted as rejected, never starts a run): `reason` is
    one of ``not_json``, ``too_large``, ``schema``, ``signature``."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


class RemoteApiError(ActorflowError):
    """The REST API refused a request with an answer no other class of the tree describes
    (a rate limit, a malformed request, a server error): its HTTP `status` and error
    `code` (docs/api.md)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


class AuthError(RemoteApiError):
    """The REST API refused the token (401: missing, unknown, revoked or expired) or what
    its user may do (403: a role too low for the action)."""


class UnsupportedError(ActorflowError):
    """An operation this client's connection cannot carry: e.g. a method the REST API does
    not offer, called on a `Client` that goes through it (``ACTORFLOW_API_URL``)."""

    def __init__(self, operation: str, reason: str) -> None:
        self.operation = operation
        self.reason = reason
        super().__init__(f"{operation}: {reason}")


class StepError(ActorflowError):
    """Raised by a step handler to fail with an error code a workflow's policy can act on.

    Example:
        ```python
        raise StepError("DB_DOWN", "primary unreachable", retryable=True)
        ```
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = True,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.retryable = retryable
        self.details = dict(details or {})
        super().__init__(f"[{code}] {message}")


class ErrorCode(StrEnum):
    """The codes the engine itself puts in ``ErrorInfo.code`` when a step or run fails.

    A workflow's ``onError`` policies and a function's ``retry.nonRetryable`` name them
    like any handler-defined `StepError` code (``ErrorInfo.code`` stays a plain string on
    the wire; compare with ``ErrorCode(info.code)`` or ``info.code == ErrorCode.TIMEOUT``).
    """

    # --- raised around a handler, by its replica ---
    HANDLER_ERROR = "HANDLER_ERROR"  # the handler raised an exception that is no StepError
    TIMEOUT = "TIMEOUT"  # the handler ran past its function's `timeout`, or a node its own
    OUTPUT_NOT_JSON = "OUTPUT_NOT_JSON"  # the handler returned a value JSON cannot carry
    INPUT_INVALID = "INPUT_INVALID"  # the step's inputs do not fit its function's inputSchema
    OUTPUT_INVALID = "OUTPUT_INVALID"  # the handler's output does not fit its outputSchema
    # --- a function's pool that cannot serve (every task sent to it fails) ---
    HANDLER_IMPORT_FAILED = "HANDLER_IMPORT_FAILED"  # the handler does not import in a replica
    RUNTIME_ENV_FAILED = "RUNTIME_ENV_FAILED"  # Ray could not set up the runtime environment
    # --- raised by the built-in steps (besides EXIT_<n> / SIGNAL_<s> for shell, HTTP_<status>)
    HTTP_UNREACHABLE = "HTTP_UNREACHABLE"  # an HTTP step's server could not be reached
    SECRET_MISSING = "SECRET_MISSING"  # an HTTP / SQL step's secret has no value on the replica
    SQL_CONNECTION = "SQL_CONNECTION"  # a SQL step cannot connect (or lost its connection)
    SQL_SYNTAX = "SQL_SYNTAX"  # the database cannot parse a SQL step's query
    SQL_PROGRAMMING = "SQL_PROGRAMMING"  # a query the database refuses: no such table, column…
    SQL_INTEGRITY = "SQL_INTEGRITY"  # a constraint refused the statement (unique, foreign key…)
    SQL_DATA = "SQL_DATA"  # a value the database refuses (bad type, out of range, division…)
    SQL_OPERATIONAL = "SQL_OPERATIONAL"  # the database failed to run it (locks, deadlocks, disk…)
    SQL_TIMEOUT = "SQL_TIMEOUT"  # no pooled connection in time, or the database cancelled it
    CHILD_FAILED = "CHILD_FAILED"  # a sub-workflow's child run ended without an error code
    CHILD_NOT_STARTED = "CHILD_NOT_STARTED"  # the controller refused to start a child run
    SUBWORKFLOW_DEPTH = "SUBWORKFLOW_DEPTH"  # a child run would nest deeper than allowed
    # --- decided by the run itself ---
    RUN_TIMEOUT = "RUN_TIMEOUT"  # the run ran past its workflow's `timeout`
    WAIT_TIMEOUT = "WAIT_TIMEOUT"  # a wait / approval node's timeout passed before a signal
    EXPRESSION_ERROR = "EXPRESSION_ERROR"  # a node's inputs, `forEach` or wait key do not render
    FAIL = "FAIL"  # a `fail` node was reached (its message is the error's)
    OUTPUT_ERROR = "OUTPUT_ERROR"  # every node is done but the workflow's outputs do not render
    HOOK_ERROR = "HOOK_ERROR"  # a workflow hook raised (recorded; the run goes on)
    HOOK_TIMEOUT = "HOOK_TIMEOUT"  # a workflow hook ran past ACTORFLOW_HOOK_TIMEOUT
