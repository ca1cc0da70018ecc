"""Starting runs: snapshot the definitions, record the first event, hand it to a driver."""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any

from nats.js import JetStreamContext

from actorflow.actors.run.supervisor import RunSupervisor
from actorflow.actors.store.errors import API_ERROR, is_wrong_last_sequence
from actorflow.actors.store.jetstream import key_value
from actorflow.actors.store.registry import Registry
from actorflow.actors.store.retry import with_retries
from actorflow.definitions import events as ev
from actorflow.definitions.models import Function, split_ref
from actorflow.definitions.plan import function_refs
from actorflow.definitions.snapshot import run_started

log = logging.getLogger(__name__)


class RunStarter:
    def __init__(self, js: JetStreamContext, registry: Registry, runs: RunSupervisor) -> None:
        self._js = js
        self._registry = registry
        self._runs = runs

    async def start(
        self,
        workflow: str,
        inputs: dict[str, Any],
        version: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record the run's first event and hand it to a run actor; returns its id.

        With a `run_id` this is idempotent: starting the same id twice starts one run.
        """
        wf = await self._registry.workflow(workflow, version)
        specs: dict[str, Function] = {}
        for ref in function_refs(wf):
            name, wanted = split_ref(ref)
            specs[ref] = await self._registry.function(name, wanted)
        run_id = run_id or f"{wf.metadata.name}-{secrets.token_hex(5)}"
        started = run_started(run_id, wf, specs, inputs)
        try:
            ack = await with_retries(
                lambda: self._js.publish(
                    ev.run_subject(run_id, ev.DECISIONS),
                    ev.encode(started),
                    headers={
                        ev.EXPECTED_LAST_SUBJECT_SEQ: "0",
                        ev.MSG_ID: ev.decision_msg_id(run_id, 0),
                    },
                ),
                f"start {run_id}",
            )
        except API_ERROR as exc:
            if is_wrong_last_sequence(exc):
                return run_id  # already started: same id, same run
            raise
        if ack.duplicate:
            return run_id
        self._runs.drive(run_id, started.model_dump(mode="json"), ack.seq)
        await self._record_pending(started)
        return run_id

    async def _record_pending(self, started: ev.RunStarted) -> None:
        """List the run at once; `create` never overwrites the run actor's newer record."""
        record = ev.RunRecord(
            run_id=started.run_id,
            workflow=started.workflow,
            version=started.version,
            status=ev.RunStatus.PENDING,
            created_at=started.at,
            updated_at=started.at,
        )
        # The run actor wrote first (its record is newer), or NATS is away: either way the
        # run actor's own record follows.
        with contextlib.suppress(Exception):
            kv = await key_value(self._js, ev.KV_RUNS)
            await kv.create(started.run_id, ev.encode(record))
