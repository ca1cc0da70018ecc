"""Which control action applies to a run in which state — pure, no Ray, no NATS.

A request that does not apply to the run as it stands is refused with a `ControlError`
and changes nothing; these rules decide that before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping

from actorflow.actors.run.signals import check
from actorflow.actors.run.state import RunState
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ControlError
from actorflow.definitions.plan import TASK_KINDS, Plan

_LIVE = frozenset({ev.RunStatus.PENDING, ev.RunStatus.RUNNING, ev.RunStatus.WAITING})
_UNDOING = frozenset({ev.RunStatus.COMPENSATING})

#: The run statuses in which each action applies (a compensating run can be paused or
#: terminated, not cancelled: it is already stopping).
ALLOWED: Mapping[ev.ControlAction, frozenset[ev.RunStatus]] = {
    "pause": _LIVE | _UNDOING,
    "resume": frozenset({ev.RunStatus.INTERRUPTED, ev.RunStatus.PAUSED}),
    "cancel": _LIVE | {ev.RunStatus.PAUSED},
    "terminate": _LIVE | _UNDOING | {ev.RunStatus.PAUSED, ev.RunStatus.INTERRUPTED},
    "retry": frozenset({ev.RunStatus.INTERRUPTED, ev.RunStatus.PAUSED}),
    "approve": frozenset({ev.RunStatus.RUNNING, ev.RunStatus.WAITING}),
    "break": _LIVE | _UNDOING | {ev.RunStatus.PAUSED, ev.RunStatus.INTERRUPTED},
    "unbreak": _LIVE | _UNDOING | {ev.RunStatus.PAUSED, ev.RunStatus.INTERRUPTED},
    "step": frozenset({ev.RunStatus.PAUSED}),
    "override": frozenset({ev.RunStatus.PAUSED}),
}


def check_status(request: ev.ControlRequest, record: ev.RunRecord) -> None:
    """ControlError unless `request` applies to a run in the state `record` describes."""
    allowed = ALLOWED[request.action]
    if record.status not in allowed:
        raise ControlError(
            f"cannot {request.action} run {record.run_id}: it is {record.status.value} "
            f"(allowed when {', '.join(s.value for s in sorted(allowed))})"
        )


def check_retry(request: ev.ControlRequest, record: ev.RunRecord, nodes: frozenset[str]) -> None:
    """A retry names one of the workflow's `nodes`."""
    if request.node not in nodes:
        raise ControlError(f"run {record.run_id} has no node {request.node!r} to retry")


def check_not_compensating(state: RunState, request: ev.ControlRequest) -> None:
    """A run that has begun undoing its steps cannot retry one: resume it (the failed
    compensation is tried again) or terminate it."""
    if state.compensating:
        raise ControlError(
            f"cannot retry a node of run {state.started.run_id}: it is compensating "
            "(resume it to try the failed compensation again, or terminate it)"
        )


def check_approval(state: RunState, request: ev.ControlRequest) -> None:
    """Only a waiting approval node can be approved, only with input its schema allows."""
    run_id = state.started.run_id
    planned = state.plan.nodes.get(request.node or "")
    if planned is None or planned.spec.approval is None:
        raise ControlError(f"run {run_id} has no approval node {request.node!r}")
    status = state.nodes[planned.id].status
    if status is not ev.NodeStatus.WAITING:
        raise ControlError(f"node {request.node!r} of run {run_id} is not waiting ({status.value})")
    try:
        check(request.input, planned.spec.approval.json_schema, "approval input")
    except ValueError as exc:
        raise ControlError(str(exc)) from None


def breakpoint_problem(plan: Plan, node: str | None) -> str | None:
    """Why a breakpoint cannot stop at `node` (None: it can). Breakpoints hold nodes whose
    work is a task; sleeps, waits, approvals and value nodes are not scheduled."""
    planned = plan.nodes.get(node or "")
    if planned is None:
        known = ", ".join(sorted(plan.nodes))
        return f"workflow {plan.workflow} has no node {node!r} to break at (nodes: {known})"
    if planned.kind not in TASK_KINDS:
        kinds = ", ".join(sorted(TASK_KINDS))
        return f"node {node!r} is a {planned.kind} node; breakpoints stop at {kinds} nodes"
    return None


def check_breakpoint(state: RunState, request: ev.ControlRequest) -> None:
    """A break / unbreak names a node a breakpoint can stop at."""
    problem = breakpoint_problem(state.plan, request.node)
    if problem is not None:
        raise ControlError(f"run {state.started.run_id}: {problem}")


def check_override(state: RunState, request: ev.ControlRequest) -> None:
    """Only the inputs of a node the run is paused before can be overridden."""
    run_id = state.started.run_id
    before = [h.node for h in state.held if h.position == "before"]
    if request.node not in before:
        where = ", ".join(before) or "no node (it is not at a breakpoint)"
        raise ControlError(
            f"run {run_id} is not paused before node {request.node!r} (paused before {where})"
        )
    if not isinstance(request.input, dict):
        raise ControlError("an override is an object of input names and values")


def recorded_only(request: ev.ControlRequest, record: ev.RunRecord) -> bool:
    """A breakpoint or an override on a stopped run needs no driver: the history keeps
    it until a resume replays it (waking one would rewrite the record as it stopped, racing
    the resume's RUNNING)."""
    stopped = record.status in (ev.RunStatus.PAUSED, ev.RunStatus.INTERRUPTED)
    return stopped and request.action in ("break", "unbreak", "override")


def reopens(request: ev.ControlRequest) -> bool:
    """Resume and retry show the run RUNNING at once, so `resume(); result()` waits for the
    new outcome instead of returning the old one."""
    return request.action in ("resume", "retry", "step")


def reopened(record: ev.RunRecord) -> ev.RunRecord:
    """The record of a run that a resume or retry is reopening."""
    return record.model_copy(
        update={
            "status": ev.RunStatus.RUNNING,
            "updated_at": ev.now(),
            "reason": None,
            "node": None,
            "error": None,
            "guidance": "",
            "finished_at": None,
        }
    )
