"""The controller: one detached, named actor that owns registry, pools and run actors.

It is the only component that creates actors. On start it rebuilds everything from
JetStream — definitions from the KV bucket, function pools from the definitions, and every
unfinished run from the runs bucket — so a restart of the whole cluster resumes work
without anyone asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import APIError
from pydantic import ValidationError

from actorflow.actors.config import EngineConfig
from actorflow.actors.functions.placement import Levels
from actorflow.actors.functions.pools import FunctionPool, check_fits
from actorflow.actors.run import signals
from actorflow.actors.run.history import replay
from actorflow.actors.run.state import RunState
from actorflow.actors.run.supervisor import RunSupervisor
from actorflow.actors.store.jetstream import connect, ensure_infrastructure
from actorflow.actors.store.registry import Registry
from actorflow.actors.store.retry import is_wrong_last_sequence, with_retries
from actorflow.actors.store.streams import read_record
from actorflow.definitions import events as ev
from actorflow.definitions.errors import (
    ActorflowError,
    ControlError,
    DefinitionError,
    InUseError,
    NotFoundError,
)
from actorflow.definitions.graph import validate_workflow
from actorflow.definitions.models import (
    Definition,
    Function,
    RetryPolicy,
    RuntimeEnv,
    Workflow,
    split_ref,
)
from actorflow.definitions.plan import bind_inputs, compile_plan, function_refs

log = logging.getLogger(__name__)

CONTROLLER_NAME = "actorflow-controller"


class ControllerPlugin(Protocol):
    """A service that lives in the controller (triggers): it owns the definition `kinds` it
    names, is started after recovery, and may create and supervise actors of its own.

    The controller knows it only through this protocol, because the layers above
    (``actorflow.triggers``) import the actors layer, never the other way round; the
    wiring passes the factory in.
    """

    kinds: frozenset[str]

    async def start(self) -> None: ...

    async def check(self, documents: list[dict[str, Any]], workflows: set[str]) -> None: ...

    async def apply(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    async def call(self, op: str, args: dict[str, Any]) -> Any: ...

    async def shutdown(self) -> None: ...


PluginFactory = Callable[[EngineConfig, JetStreamContext], ControllerPlugin]


class Controller:
    def __init__(self, config: EngineConfig, plugin: PluginFactory | None = None) -> None:
        self._config = config
        self._plugin_factory = plugin
        self._plugin: ControllerPlugin | None = None
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._registry: Registry | None = None
        self._pools: dict[str, FunctionPool] = {}
        self._levels = Levels(config.namespace, config.level_ready_timeout)
        self._autoscaler: asyncio.Task[None] | None = None
        self._autoscale_rounds = 0
        self._runs: RunSupervisor | None = None
        self._signals: asyncio.Task[None] | None = None
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
            self._runs = RunSupervisor(self._config, self._js)
            await self._runs.start()
            for function in await self._registry.functions():
                try:
                    await self._start_pool(function, await self._env_of(function))
                except Exception as exc:
                    log.error("pool %s not restored: %s", function.ref, exc)
            self._autoscaler = asyncio.create_task(self._autoscale())
            recovered = await self._runs.recover()
            await self._nc.subscribe(f"{ev.CONTROL_PREFIX}.*", cb=self._on_control_message)
            self._signals = asyncio.create_task(signals.route(self._js, self._wake_for_signal))
            if self._plugin_factory is not None:
                self._plugin = self._plugin_factory(self._config, self._js)
                await self._plugin.start()
            self._started = True
            log.info("controller started; recovered %d unfinished runs", recovered)
            return self.info()

    def info(self) -> dict[str, Any]:
        return {
            "nats_url": self._config.nats_url,
            "run_actors": self._config.run_actors,
            "active_runs": self._runs.active if self._runs else 0,
            "autoscale_rounds": self._autoscale_rounds,
        }

    # --- definitions -----------------------------------------------------------------
    async def apply(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Register definitions: environments, then functions, then workflows.

        Every document is validated — references resolved, requests checked against the
        cluster's nodes — before any is stored: a bad batch changes nothing. A function's
        pool is (re)started only when its definition changed, or when it could not serve.
        """
        assert self._registry is not None and self._js is not None
        async with self._apply_lock:
            plugin_docs, documents = self._plugin_documents(documents)
            parsed = [_parse(doc) for doc in documents]
            envs = [d for d in parsed if isinstance(d, RuntimeEnv)]
            functions = [d for d in parsed if isinstance(d, Function)]
            workflows = [d for d in parsed if isinstance(d, Workflow)]
            new_envs = {e.ref: e for e in envs}
            resolved = {f.ref: await self._env_of(f, new_envs) for f in functions}
            for function in functions:
                check_fits(function, resolved[function.ref])
            known = {f.ref for f in await self._registry.functions()} | {f.ref for f in functions}
            for wf in workflows:
                validate_workflow(wf, known_functions=known)
            if plugin_docs and self._plugin is not None:
                await self._plugin.check(plugin_docs, {w.metadata.name for w in workflows})
            results = [_applied(env, await self._registry.put(env)) for env in envs]
            for function in functions:
                pool = self._pools.get(function.ref)
                if pool is None or pool.function != function or pool.failure is not None:
                    await self._start_pool(function, resolved[function.ref])
                changed = await self._registry.put(function)
                results.append(_applied(function, changed, self._pools[function.ref]))
            for wf in workflows:
                results.append(_applied(wf, await self._registry.put(wf)))
            if plugin_docs and self._plugin is not None:
                results += await self._plugin.apply(plugin_docs)
            return results

    async def _env_of(
        self, function: Function, batch: dict[str, RuntimeEnv] | None = None
    ) -> RuntimeEnv | None:
        """The function's runtime environment, from this batch or the registry."""
        assert self._registry is not None
        ref = function.spec.runtime_env
        if ref is None:
            return None
        if batch and ref in batch:
            return batch[ref]
        name, version = split_ref(ref)
        try:
            return await self._registry.runtime_env(name, version)
        except NotFoundError:
            raise DefinitionError.single(
                f"function {function.ref}: runtime env {ref!r} is not registered",
                field="spec.runtimeEnv",
            ) from None

    async def _start_pool(self, function: Function, env: RuntimeEnv | None) -> None:
        """Start the new pool before the old one drains: both pull from the same durable
        consumer, so queued tasks never wait on a pool that is going away."""
        assert self._js is not None
        level = env.spec.level if env else None
        group = await self._levels.acquire(level, function.ref) if level else None
        pool = FunctionPool(function, self._config, self._js, env=env, group=group)
        try:
            await pool.start()
        except Exception:
            if level and not self._uses_level(function.ref, level):
                await self._levels.release(level, function.ref)
            raise
        old = self._pools.get(function.ref)
        self._pools[function.ref] = pool
        if old is not None:
            await old.stop()
            old_level = old.env.spec.level if old.env else None
            if old_level and old_level != level:
                await self._levels.release(old_level, function.ref)

    def _uses_level(self, ref: str, level: Any) -> bool:
        pool = self._pools.get(ref)
        return bool(pool and pool.env and pool.env.spec.level == level)

    async def _autoscale(self) -> None:
        """Every pool, every interval: observe its queue and resize it."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._config.autoscale_interval)
            pools = list(self._pools.values())
            results = await asyncio.gather(
                *(pool.tick(loop.time()) for pool in pools), return_exceptions=True
            )
            for pool, result in zip(pools, results, strict=True):
                if isinstance(result, Exception):
                    log.warning("autoscaling %s failed: %s", pool.key, result)
            self._autoscale_rounds += 1

    # --- plugin (triggers) -------------------------------------------------------------
    def _plugin_documents(
        self, documents: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Split off the documents of the kinds the plugin owns (applied after workflows,
        so a trigger can name a workflow of the same batch)."""
        kinds = self._plugin.kinds if self._plugin is not None else frozenset()
        mine = [d for d in documents if d.get("kind") in kinds]
        return mine, [d for d in documents if d.get("kind") not in kinds]

    async def plugin_call(self, op: str, args: dict[str, Any]) -> Any:
        """An operation of the plugin (e.g. ``trigger.enable``), for the SDK and CLI."""
        if self._plugin is None:
            raise ActorflowError("this controller runs no triggers")
        return await self._plugin.call(op, args)

    async def pools(self) -> list[dict[str, Any]]:
        return [pool.describe() for pool in self._pools.values()]

    async def levels(self) -> list[dict[str, Any]]:
        return self._levels.describe()

    async def delete(self, kind: str, ref: str) -> dict[str, Any]:
        """Delete one version of a function or runtime environment — refused while a
        registered definition still names it (a workflow pins the function, or names it
        `@latest` and it is the only version; a function uses the environment)."""
        assert self._registry is not None
        name, version = split_ref(ref)
        async with self._apply_lock:
            if kind == "Function":
                if version == "latest":
                    version = await self._registry.latest_version("Function", name)
                await self._registry.function(name, version)  # NotFoundError if absent
                versions = [f for f in await self._registry.functions() if f.metadata.name == name]
                users = [
                    wf.ref
                    for wf in await self._registry.workflows()
                    if any(
                        r == f"{name}@{version}" or (r == f"{name}@latest" and len(versions) == 1)
                        for r in function_refs(wf)
                    )
                ]
                if users:
                    raise InUseError(
                        f"function {name}@{version} is used by workflow(s) {', '.join(users)}; "
                        "delete or re-pin them first"
                    )
                await self._registry.delete("Function", name, version)
                pool = self._pools.pop(f"{name}@{version}", None)
                if pool is not None:
                    await pool.stop()
                    level = pool.env.spec.level if pool.env else None
                    if level:
                        await self._levels.release(level, pool.key)
            elif kind == "RuntimeEnv":
                await self._registry.runtime_env(name, version)
                users = [
                    f.ref
                    for f in await self._registry.functions()
                    if f.spec.runtime_env == f"{name}@{version}"
                ]
                if users:
                    raise InUseError(
                        f"runtime env {name}@{version} is used by function(s) {', '.join(users)}"
                    )
                await self._registry.delete("RuntimeEnv", name, version)
            else:
                raise DefinitionError.single(f"cannot delete a {kind}", field="kind")
            return {"kind": kind, "name": name, "version": version, "deleted": True}

    async def runtime_envs(self) -> list[dict[str, Any]]:
        assert self._registry is not None
        return [
            e.model_dump(mode="json", by_alias=True) for e in await self._registry.runtime_envs()
        ]

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
        functions: dict[str, str] = {}
        specs: dict[str, Function] = {}
        for ref in function_refs(wf):
            name, wanted = split_ref(ref)
            specs[ref] = await self._registry.function(name, wanted)
            functions[ref] = specs[ref].metadata.version
        # The run keeps the retry policy its functions had when it started.
        retries = {
            node.id: specs[node.function or ""].spec.retry.model_dump(mode="json")
            for node in wf.spec.nodes
            if node.function
            and node.retry is None
            and specs[node.function].spec.retry != RetryPolicy()
        }
        hooks = {
            h.call: {"handler": specs[h.call].spec.handler, "code_dir": specs[h.call].spec.code_dir}
            for h in wf.spec.hooks
            if h.call in specs
        }
        compile_plan(wf, functions)  # fail here, not in the run actor, on a bad plan
        run_id = run_id or f"{wf.metadata.name}-{secrets.token_hex(5)}"
        started = ev.RunStarted(
            run_id=run_id,
            workflow=wf.metadata.name,
            version=wf.metadata.version,
            plan=wf.model_dump(mode="json", by_alias=True),
            functions=functions,
            retries=retries,
            hooks=hooks,
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
            if is_wrong_last_sequence(exc):
                return run_id  # already started: same id, same run
            raise
        if ack.duplicate:
            return run_id
        assert self._runs is not None
        self._runs.drive(run_id, started.model_dump(mode="json"), ack.seq)
        await self._record_pending(started)
        return run_id

    async def _record_pending(self, started: ev.RunStarted) -> None:
        """List the run at once; `create` never overwrites the run actor's newer record."""
        assert self._js is not None
        record = ev.RunRecord(
            run_id=started.run_id,
            workflow=started.workflow,
            version=started.version,
            status=ev.RunStatus.PENDING,
            created_at=started.at,
            updated_at=started.at,
        )
        try:
            kv = await self._js.key_value(ev.KV_RUNS)
            await kv.create(started.run_id, ev.encode(record))
        except Exception:  # the run actor wrote first (its record is newer), or NATS is away
            log.debug("record of %s already written", started.run_id)

    # --- control -------------------------------------------------------------------
    async def control(self, run_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Pause, resume, cancel, terminate or retry a node: checked, recorded, delivered.

        A request that does not apply to the run as it stands is refused with a
        `ControlError` and changes nothing.
        """
        assert self._js is not None
        assert self._runs is not None
        try:
            req = ev.ControlRequest.model_validate(request)
        except ValidationError as exc:
            raise ControlError(f"bad control request: {_first_error(exc)}") from None
        record = await self._record(run_id)
        allowed = _ALLOWED[req.action]
        if record.status not in allowed:
            raise ControlError(
                f"cannot {req.action} run {run_id}: it is {record.status.value} "
                f"(allowed when {', '.join(s.value for s in sorted(allowed))})"
            )
        if req.action == "retry":
            wf = await self._registry_workflow(record)
            if req.node not in {n.id for n in wf.spec.nodes}:
                raise ControlError(f"run {run_id} has no node {req.node!r} to retry")
        if req.action == "approve":
            await self._check_approval(run_id, req)
        if req.action in ("resume", "retry"):
            # Shown RUNNING at once, so `resume(); result()` waits for the new outcome. It is
            # written before the request is delivered: every later write is the driver's.
            kv = await self._js.key_value(ev.KV_RUNS)
            reopened = record.model_copy(
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
            await kv.put(run_id, ev.encode(reopened))
        event = ev.RunControlled(run_id=run_id, id=uuid.uuid4().hex, **req.model_dump())
        await with_retries(
            lambda: self._js.publish(  # type: ignore[union-attr]
                ev.run_subject(run_id, ev.CONTROL),
                ev.encode(event),
                headers={ev.MSG_ID: event.id},
            ),
            f"control {run_id}",
        )
        if not self._runs.is_driving(run_id):
            self._runs.drive(run_id)
        return {"run_id": run_id, "action": req.action, "id": event.id}

    def _wake_for_signal(self, run_id: str) -> None:
        assert self._runs is not None
        if not self._runs.is_driving(run_id):
            self._runs.drive(run_id)

    async def _check_approval(self, run_id: str, req: ev.ControlRequest) -> None:
        """Only a waiting approval node can be approved, only with input its schema allows."""
        assert self._js is not None
        history = await replay(self._js, run_id)
        if not history or not isinstance(history[0].event, ev.RunStarted):
            raise NotFoundError("run", run_id)
        state = RunState(history[0].event)
        for rec in history[1:]:
            state.apply(rec.event)
        planned = state.plan.nodes.get(req.node or "")
        if planned is None or planned.spec.approval is None:
            raise ControlError(f"run {run_id} has no approval node {req.node!r}")
        if state.nodes[planned.id].status is not ev.NodeStatus.WAITING:
            status = state.nodes[planned.id].status.value
            raise ControlError(f"node {req.node!r} of run {run_id} is not waiting ({status})")
        try:
            signals.check(req.input, planned.spec.approval.json_schema, "approval input")
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    async def _record(self, run_id: str) -> ev.RunRecord:
        assert self._js is not None
        return await read_record(self._js, run_id)

    async def _registry_workflow(self, record: ev.RunRecord) -> Workflow:
        assert self._registry is not None
        return await self._registry.workflow(record.workflow, record.version)

    async def _on_control_message(self, msg: Msg) -> None:
        """Control requests from anyone on ``af.control.<run_id>``; replies if asked to."""
        run_id = msg.subject.rpartition(".")[2]
        try:
            request = json.loads(msg.data or b"{}")
            if not isinstance(request, dict):
                raise ControlError("a control request is a JSON object")
            reply: dict[str, Any] = {"ok": True, **await self.control(run_id, request)}
        except (ValueError, ActorflowError) as exc:
            reply = {"ok": False, "error": str(exc)}
            log.warning("control request for %s refused: %s", run_id, exc)
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(json.dumps(reply).encode())

    async def shutdown(self) -> None:
        """Stop pools and run actors; runs in flight resume on the next start."""
        if self._autoscaler is not None:
            self._autoscaler.cancel()
        if self._plugin is not None:
            with contextlib.suppress(Exception):
                await self._plugin.shutdown()
        await asyncio.gather(*(p.stop() for p in self._pools.values()), return_exceptions=True)
        if self._runs is not None:
            self._runs.shutdown()
        if self._nc:
            await self._nc.drain()


_KINDS: dict[str, type[Function] | type[Workflow] | type[RuntimeEnv]] = {
    "Function": Function,
    "Workflow": Workflow,
    "RuntimeEnv": RuntimeEnv,
}


def _parse(doc: dict[str, Any]) -> Definition:
    model = _KINDS.get(str(doc.get("kind")))
    if model is None:
        raise DefinitionError.single(f"unknown kind {doc.get('kind')!r}", field="kind")
    return model.model_validate(doc)


_ALLOWED: dict[str, frozenset[ev.RunStatus]] = {
    "pause": frozenset({ev.RunStatus.PENDING, ev.RunStatus.RUNNING, ev.RunStatus.WAITING}),
    "resume": frozenset({ev.RunStatus.INTERRUPTED, ev.RunStatus.PAUSED}),
    "cancel": frozenset(
        {ev.RunStatus.PENDING, ev.RunStatus.RUNNING, ev.RunStatus.WAITING, ev.RunStatus.PAUSED}
    ),
    "terminate": frozenset(
        {
            ev.RunStatus.PENDING,
            ev.RunStatus.RUNNING,
            ev.RunStatus.WAITING,
            ev.RunStatus.PAUSED,
            ev.RunStatus.INTERRUPTED,
        }
    ),
    "retry": frozenset({ev.RunStatus.INTERRUPTED, ev.RunStatus.PAUSED}),
    "approve": frozenset({ev.RunStatus.RUNNING, ev.RunStatus.WAITING}),
}


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _applied(
    definition: Definition, changed: bool, pool: FunctionPool | None = None
) -> dict[str, Any]:
    result = {
        "kind": definition.kind,
        "name": definition.metadata.name,
        "version": definition.metadata.version,
        "changed": changed,
    }
    if pool is not None and pool.failure is not None:
        result["error"] = pool.failure.message
    return result


__all__ = ["CONTROLLER_NAME", "Controller", "ControllerPlugin", "PluginFactory"]
