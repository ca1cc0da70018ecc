"""Control requests — pause, resume, cancel, terminate, retry a node, approve — from the
SDK (through the controller actor) and from anyone on ``af.control.<run_id>``."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError

from actorflow.actors.controller.results import ControlAccepted
from actorflow.actors.run import control as rules
from actorflow.actors.run.history import replay
from actorflow.actors.run.state import RunState
from actorflow.actors.run.supervisor import RunSupervisor
from actorflow.actors.store.jetstream import key_value
from actorflow.actors.store.registry import Registry
from actorflow.actors.store.retry import with_retries
from actorflow.actors.store.streams import read_record
from actorflow.actors.store.tracing import handling, inject
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ActorflowError, ControlError, NotFoundError

log = logging.getLogger(__name__)


class ControlService:
    def __init__(self, js: JetStreamContext, registry: Registry, runs: RunSupervisor) -> None:
        self._js = js
        self._registry = registry
        self._runs = runs

    async def control(self, run_id: str, request: dict[str, Any]) -> ControlAccepted:
        """Checked, recorded, delivered: a request that does not apply to the run as it
        stands is refused with a `ControlError` and changes nothing."""
        try:
            req = ev.ControlRequest.model_validate(request)
        except ValidationError as exc:
            raise ControlError(f"bad control request: {_first_error(exc)}") from None
        record = await read_record(self._js, run_id)
        rules.check_status(req, record)
        if req.action == "retry":
            wf = await self._registry.workflow(record.workflow, record.version)
            rules.check_retry(req, record, frozenset(n.id for n in wf.spec.nodes))
            rules.check_not_compensating(await self._state(run_id), req)
        if req.action == "approve":
            rules.check_approval(await self._state(run_id), req)
        if req.action in ("break", "unbreak"):
            rules.check_breakpoint(await self._state(run_id), req)
        if req.action == "override":
            rules.check_override(await self._state(run_id), req)
        if rules.reopens(req):
            # Written before the request is delivered: every later write is the driver's.
            kv = await key_value(self._js, ev.KV_RUNS)
            await kv.put(run_id, ev.encode(rules.reopened(record)))
        event = ev.RunControlled.of(req, run_id=run_id, id=uuid.uuid4().hex)
        await with_retries(
            lambda: self._js.publish(
                ev.run_subject(run_id, ev.CONTROL),
                ev.encode(event),
                headers=inject({ev.MSG_ID: event.id}),
            ),
            f"control {run_id}",
        )
        if not rules.recorded_only(req, record):
            self.wake(run_id)
        return ControlAccepted(run_id=run_id, action=req.action, id=event.id)

    def wake(self, run_id: str) -> None:
        """Make sure someone drives the run (a control request or a signal arrived)."""
        if not self._runs.is_driving(run_id):
            self._runs.drive(run_id)

    async def _state(self, run_id: str) -> RunState:
        history = await replay(self._js, run_id)
        if not history or not isinstance(history[0].event, ev.RunStarted):
            raise NotFoundError("run", run_id)
        return RunState.from_history([rec.event for rec in history])

    async def on_message(self, msg: Msg) -> None:
        """A request on ``af.control.<run_id>``; replies if asked to."""
        run_id = ev.parse_control_subject(msg.subject)
        try:
            request = json.loads(msg.data or b"{}")
            if not isinstance(request, dict):
                raise ControlError("a control request is a JSON object")
            with handling(
                f"control {run_id}", msg.headers, msg.subject, root=False, actorflow__run_id=run_id
            ):
                accepted = await self.control(run_id, request)
            reply = ev.ControlReply.accepted(accepted.run_id, accepted.action, accepted.id)
        except (ValueError, ActorflowError) as exc:
            reply = ev.ControlReply.refused(str(exc))
            log.warning("control request for %s refused: %s", run_id, exc)
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(ev.encode(reply))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])
