"""The controller: one detached, named actor that owns registry, pools and run actors.

It is the only component that creates actors. On start it rebuilds everything from
JetStream — definitions from the KV bucket, function pools from the definitions, and every
unfinished run from the runs bucket — so a restart of the whole cluster resumes work
without anyone asking.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import ray
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, NoKeysError

from actorflow.actors.config import EngineConfig
from actorflow.actors.history import with_retries
from actorflow.actors.jetstream import connect, ensure_infrastructure
from actorflow.actors.pools import FunctionPool, start_pool, stop_pool
from actorflow.actors.registry import Registry
from actorflow.actors.run_actor import RunActor
from actorflow.definitions import events as ev
from actorflow.definitions.errors import DefinitionError, NotFoundError
from actorflow.definitions.graph import validate_workflow
from actorflow.definitions.models import Function, Workflow, split_ref
from actorflow.definitions.plan import bind_inputs, compile_plan

log = logging.getLogger(__name__)

CONTROLLER_NAME = "actorflow-controller"
_WRONG_LAST_SEQUENCE = 10071


class Controller:
    def __init__(self, config: EngineConfig) -> None:
        self._config = config
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._registry: Registry | None = None
        self._pools: dict[str, FunctionPool] = {}
        self._run_actors: list[Any] = []
        self._load: dict[int, int] = {}
        self._driving: dict[str, asyncio.Task[None]] = {}
        self._apply_lock = asyncio.Lock()
        self._started = False
        self._start_lock = asyncio.Lock()

    async def start(self) -> dict[str, Any]:
        """Idempotent: connect, create infrastructure, restore pools, recover runs."""
        async with self._start_lock:
            if self._started:
                return self.info()
            self._nc = await connect(self._config.nats_url, name=CONTROLLER_NAME)
            self._js = self._nc.jetstream()
            await ensure_infrastructure(self._js, replicas=self._config.stream_replicas)
            self._registry = await Registry.open(self._js)
            self._run_actors = [
                self._new_run_actor(f"af-run-actor-{i}") for i in range(self._config.run_actors)
            ]
            await asyncio.gather(*(a.start.remote() for a in self._run_actors))
            self._load = dict.fromkeys(range(len(self._run_actors)), 0)
            for function in await self._registry.functions():
                try:
                    self._pools[function.ref] = await start_pool(function, self._config, self._js)
                except Exception as exc:
                    log.error("pool %s not restored: %s", function.ref, exc)
            recovered = await self._recover()
            self._started = True
            log.info("controller started; recovered %d unfinished runs", recovered)
            return self.info()

    def info(self) -> dict[str, Any]:
        return {
            "nats_url": self._config.nats_url,
            "run_actors": len(self._run_actors),
            "active_runs": len(self._driving),
        }

    # --- definitions -----------------------------------------------------------------
    async def apply(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Register definitions (functions first, so workflows can name them).

        Every document is validated before any is stored: a bad batch changes nothing.
        """
        assert self._registry is not None and self._js is not None
        async with self._apply_lock:
            parsed = [_parse(doc) for doc in documents]
            functions = [d for d in parsed if isinstance(d, Function)]
            workflows = [d for d in parsed if isinstance(d, Workflow)]
            known = {f.ref for f in await self._registry.functions()} | {f.ref for f in functions}
            for wf in workflows:
                validate_workflow(wf, known_functions=known)
            results: list[dict[str, Any]] = []
            for function in functions:
                pool = self._pools.get(function.ref)
                if pool is None or pool.function != function:
                    new_pool = await start_pool(function, self._config, self._js)
                    if pool is not None:
                        await stop_pool(pool)
                    self._pools[function.ref] = new_pool
                changed = await self._registry.put(function)
                results.append(_applied(function, changed))
            for wf in workflows:
                results.append(_applied(wf, await self._registry.put(wf)))
            return results

    async def pools(self) -> list[dict[str, Any]]:
        return [pool.describe() for pool in self._pools.values()]

    # --- runs ------------------------------------------------------------------------
    async def start_run(
        self,
        workflow: str,
        inputs: dict[str, Any],
        version: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record the run's first event and hand it to a run actor; returns its id.

        With a `run_id` this is idempotent: starting the same id twice starts one run.
        """
        assert self._registry is not None and self._js is not None
        wf = await self._registry.workflow(workflow, version)
        bound = bind_inputs(wf.spec.inputs, inputs)
        functions = {}
        for node in wf.spec.nodes:
            name, wanted = split_ref(node.function)
            fn = await self._registry.function(name, wanted)
            functions[node.function] = fn.metadata.version
        compile_plan(wf, functions)  # fail here, not in the run actor, on a bad plan
        run_id = run_id or f"{wf.metadata.name}-{secrets.token_hex(5)}"
        started = ev.RunStarted(
            run_id=run_id,
            workflow=wf.metadata.name,
            version=wf.metadata.version,
            plan=wf.model_dump(mode="json", by_alias=True),
            functions=functions,
            inputs=bound,
        )
        js = self._js
        try:
            ack = await with_retries(
                lambda: js.publish(
                    ev.run_subject(run_id, ev.DECISIONS),
                    ev.encode(started),
                    headers={ev.EXPECTED_LAST_SUBJECT_SEQ: "0", ev.MSG_ID: f"{run_id}.d.0"},
                ),
                f"start {run_id}",
            )
        except APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                return run_id  # already started: same id, same run
            raise
        if ack.duplicate:
            return run_id
        self._drive(run_id, started.model_dump(mode="json"), ack.seq)
        await self._record_pending(started)
        return run_id

    async def _record_pending(self, started: ev.RunStarted) -> None:
        """List the run at once; `create` never overwrites the run actor's newer record."""
        assert self._js is not None
        kv = await self._js.key_value(ev.KV_RUNS)
        record = ev.RunRecord(
            run_id=started.run_id,
            workflow=started.workflow,
            version=started.version,
            status=ev.RunStatus.PENDING,
            created_at=started.at,
            updated_at=started.at,
        )
        try:
            await kv.create(started.run_id, ev.encode(record))
        except Exception:  # the run actor wrote first: its record is newer
            log.debug("record of %s already written", started.run_id)

    def _drive(self, run_id: str, started: dict[str, Any] | None, seq: int = 0) -> None:
        index = min(self._load, key=lambda i: self._load[i])
        self._load[index] += 1
        actor = self._run_actors[index]
        ref = actor.drive.options(name=f"run:{run_id}").remote(run_id, started, seq)
        self._driving[run_id] = asyncio.create_task(self._supervise(run_id, index, ref))

    async def _supervise(self, run_id: str, index: int, ref: Any) -> None:
        """If the run actor dies under a run, replace it and re-drive the run by replay."""
        try:
            await ref
        except ray.exceptions.RayActorError:
            log.warning("run actor %d died driving %s; re-driving by replay", index, run_id)
            await self._replace_run_actor(index)
            self._load[index] -= 1
            self._driving.pop(run_id, None)
            self._drive(run_id, None)
            return
        except Exception:
            log.exception("driver of %s failed", run_id)
        self._load[index] -= 1
        self._driving.pop(run_id, None)

    async def _replace_run_actor(self, index: int) -> None:
        old = self._run_actors[index]
        try:
            await old.active.remote()
            return  # still alive: another supervisor already replaced it
        except ray.exceptions.RayActorError:
            pass
        actor = self._new_run_actor(f"af-run-actor-{index}-{secrets.token_hex(3)}")
        self._run_actors[index] = actor
        await actor.start.remote()

    def _new_run_actor(self, name: str) -> Any:
        """Run actors reserve no CPU: they wait on NATS; the CPUs belong to functions."""
        remote: Any = ray.remote(RunActor)
        return remote.options(
            name=name, namespace=self._config.namespace, num_cpus=0, max_concurrency=100_000
        ).remote(self._config, name)

    async def _recover(self) -> int:
        assert self._js is not None
        kv = await self._js.key_value(ev.KV_RUNS)
        try:
            keys = await kv.keys()
        except NoKeysError:
            return 0
        count = 0
        for key in keys:
            try:
                entry = await kv.get(key)
                record = ev.decode(ev.RunRecord, entry.value or b"")
            except (KeyNotFoundError, ev.DecodeError):
                continue
            if not record.status.finished and key not in self._driving:
                self._drive(key, None)
                count += 1
        return count

    async def shutdown(self) -> None:
        """Stop pools and run actors; runs in flight resume on the next start."""
        await asyncio.gather(*(stop_pool(p) for p in self._pools.values()), return_exceptions=True)
        for actor in self._run_actors:
            ray.kill(actor, no_restart=True)
        if self._nc:
            await self._nc.drain()


def _parse(doc: dict[str, Any]) -> Function | Workflow:
    kind = doc.get("kind")
    if kind == "Function":
        return Function.model_validate(doc)
    if kind == "Workflow":
        return Workflow.model_validate(doc)
    raise DefinitionError.single(f"unknown kind {kind!r}", field="kind")


def _applied(definition: Function | Workflow, changed: bool) -> dict[str, Any]:
    return {
        "kind": definition.kind,
        "name": definition.metadata.name,
        "version": definition.metadata.version,
        "changed": changed,
    }


__all__ = ["CONTROLLER_NAME", "Controller", "NotFoundError"]
