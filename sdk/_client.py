"""The asyncio client: apply definitions, start runs, watch them.

Example:
    ```python
    async with AsyncClient() as client:
        await client.apply("examples/hello/workflow.yaml")
        run = await client.run("hello", {"name": "Ada"})
        print(await run.result(timeout=30))
    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import ray
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict

from actorflow._run_view import RunView, run_view
from actorflow._views import NodeInfo, node_infos
from actorflow.actors.controller import request_start
from actorflow.actors.controller.results import Applied, ControlAccepted, EngineInfo
from actorflow.actors.functions.pools import PoolStatus
from actorflow.actors.run.history import replay
from actorflow.actors.run.rerun import reuse_of
from actorflow.actors.run.state import RunState
from actorflow.actors.store.errors import NO_STREAM
from actorflow.actors.store.jetstream import connect, ensure_infrastructure
from actorflow.actors.store.log_reader import ensure_run_exists, follow_logs, read_logs
from actorflow.actors.store.registry import Registry
from actorflow.actors.store.streams import read_record, read_records
from actorflow.actors.store.tracing import carrier, inject, sending
from actorflow.cluster import wiring
from actorflow.cluster.settings import Settings
from actorflow.definitions import events as ev
from actorflow.definitions.convert import ConvertOptions
from actorflow.definitions.errors import (
    ActorflowError,
    ClusterUnavailableError,
    ControlError,
    EventRejectedError,
    InputError,
    NotFoundError,
    RunFailedError,
    TriggerError,
    WaitTimeoutError,
)
from actorflow.definitions.loader import load_path
from actorflow.definitions.models import (
    AnyDefinition,
    Connection,
    EventType,
    Function,
    RuntimeEnv,
    StepTemplate,
    Trigger,
    Workflow,
)
from actorflow.definitions.priorities import check_priority
from actorflow.definitions.subjects import check_pattern
from actorflow.definitions.subjects import matches as subject_matches
from actorflow.definitions.templates import catalog
from actorflow.triggers import store as trigger_store

Definitions = str | Path | AnyDefinition | Iterable[AnyDefinition]


async def _call(ref: Any) -> Any:
    """Await a controller call, surfacing the controller's own error, not Ray's wrapper."""
    try:
        return await ref
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, ActorflowError):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as exc:
        raise ClusterUnavailableError("controller", "ray", str(exc).splitlines()[0]) from exc


_T = TypeVar("_T")


async def _nats(op: Awaitable[_T], url: str) -> _T:
    """A NATS call whose failure (server away, timed out) is a `ClusterUnavailableError`."""
    try:
        return await op
    except NO_STREAM:
        raise
    except (NatsError, TimeoutError) as exc:
        raise ClusterUnavailableError("NATS", url, str(exc) or type(exc).__name__) from exc


class PublishResult(BaseModel):
    """Where a published event was stored: the capturing stream and its sequence, or
    ``stream=None`` when no stream captures the subject (only live subscribers saw it)."""

    model_config = ConfigDict(frozen=True)

    subject: str
    stream: str | None = None
    seq: int | None = None
    duplicate: bool = False


class TriggerInfo(BaseModel):
    """A trigger as `triggers list` shows it: definition, enabled flag and counts."""

    model_config = ConfigDict(frozen=True)

    trigger: Trigger
    enabled: bool
    stats: ev.TriggerStats

    @property
    def name(self) -> str:
        return self.trigger.metadata.name


class AsyncClient:
    """Connects to (or starts) the cluster; one per program is plenty."""

    def __init__(self, settings: Settings | None = None, *, log_to_driver: bool = True) -> None:
        self.settings = settings or Settings()
        self._log_to_driver = log_to_driver
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._controller: Any = None
        self.nats_url = ""

    async def connect_nats(self) -> None:
        """NATS first: an unreachable server fails in seconds, before Ray is started."""
        if self._nc is not None:
            return
        self.nats_url = self.nats_url or wiring.nats_url(self.settings)
        self._nc = await connect(
            self.nats_url, name="actorflow-client", connect_timeout=self.settings.connect_timeout
        )
        self._js = self._nc.jetstream()
        await ensure_infrastructure(self._js, self.settings)

    def connect_ray(self) -> None:
        """Join or start Ray (blocking; the blocking client calls it on the main thread)."""
        wiring.ensure_ray(self.settings, log_to_driver=self._log_to_driver)

    async def connect(self) -> AsyncClient:
        if self._controller is not None:
            return self
        await self.connect_nats()
        self.connect_ray()
        controller = wiring.controller(self.settings, self.nats_url)
        await _call(controller.start.remote())
        self._controller = controller
        return self

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None
            self._controller = None

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("client is not connected: use `await client.connect()`")
        return self._js

    @property
    def nc(self) -> NatsClient:
        if self._nc is None:
            raise RuntimeError("client is not connected: use `await client.connect()`")
        return self._nc

    async def _jetstream(self) -> JetStreamContext:
        """NATS on demand: reads go straight to JetStream, without starting Ray."""
        await self.connect_nats()
        return self.js

    async def _engine(self) -> Any:
        """The controller on demand (NATS first, then Ray, then the controller)."""
        await self.connect()
        return self._controller

    # --- definitions ---------------------------------------------------------------------
    async def apply(
        self, definitions: Definitions, *, convert: ConvertOptions | None = None
    ) -> list[Applied]:
        """Register definitions (runtime envs, functions, workflows, triggers, event types)
        from a YAML path (file or folder) or models. A batch with a bad definition changes
        nothing (`DefinitionError` names the file, line and field). Argo and Fission
        documents in a path are converted first (`convert` says how; detected by default)."""
        controller = await self._engine()
        if isinstance(definitions, str | Path):
            # Check against the registry here, so an unknown function is reported with
            # the file and line that names it.
            known = {f.ref for f in await self.functions()}
            templates = await self._template_catalog()
            workflows = {w.ref for w in await self.workflows()}
            connections = {c.ref for c in await self.connections()}
            models = load_path(
                definitions,
                known_functions=known,
                known_templates=templates,
                known_workflows=workflows,
                known_connections=connections,
                convert=convert,
            )
        else:
            models = _as_models(definitions)
        docs = [m.model_dump(mode="json", by_alias=True) for m in models]
        result: list[Applied] = await _call(controller.apply.remote(docs))
        return result

    async def _template_catalog(self) -> dict[str, StepTemplate]:
        registry = await Registry.open(await self._jetstream())
        registered = await registry.templates()
        names = sorted({t.metadata.name for t in registered})
        latest = {n: await registry.latest_version("Template", n) for n in names}
        return catalog(registered, latest)

    async def templates(self) -> list[StepTemplate]:
        """Every registered version of every template."""
        return await (await Registry.open(await self._jetstream())).templates()

    async def workflows(self) -> list[Workflow]:
        return await (await Registry.open(await self._jetstream())).workflows()

    async def connections(self) -> list[Connection]:
        """Every registered version of every connection (URLs and password references:
        a password is never stored)."""
        return await (await Registry.open(await self._jetstream())).connections()

    async def functions(self) -> list[Function]:
        return await (await Registry.open(await self._jetstream())).functions()

    async def engine_info(self) -> EngineInfo:
        """Where the engine is and what it serves: its ``/metrics`` URL (or why there is
        none) and the Ray dashboard's."""
        # `start` is idempotent and answers the info: a controller Ray restarted is
        # started again here rather than reporting itself idle.
        info: EngineInfo = await _call((await self._engine()).start.remote())
        return info.model_copy(update={"dashboard_url": wiring.dashboard_url()})

    async def pools(self) -> list[PoolStatus]:
        """Every function pool: replicas, bounds, queue, placement and health."""
        result: list[PoolStatus] = await _call((await self._engine()).pools.remote())
        return result

    async def runtime_envs(self) -> list[RuntimeEnv]:
        raw: list[dict[str, Any]] = await _call((await self._engine()).runtime_envs.remote())
        return [RuntimeEnv.model_validate(e) for e in raw]

    async def delete(self, kind: str, ref: str) -> None:
        """Delete one version (``name@version``) of a Function, RuntimeEnv, Workflow,
        Template or Connection; refused with an `InUseError` while registered definitions
        (or, for a workflow, triggers) still name it. Runs already started are unaffected:
        they run what they resolved when they started."""
        await _call((await self._engine()).delete.remote(kind, ref))

    # --- runs ----------------------------------------------------------------------------
    async def run(
        self,
        workflow: str | Workflow,
        inputs: dict[str, Any] | None = None,
        *,
        version: str | None = None,
        run_id: str | None = None,
        priority: int | None = None,
        break_before: Iterable[str] = (),
        break_after: Iterable[str] = (),
    ) -> AsyncRun:
        """Start a run and return at once; with `run_id`, starting twice starts one run.

        `break_before` / `break_after` name nodes the run stops PAUSED at, before the node
        is scheduled or after it succeeded (see `AsyncRun.step`, docs/debugging.md).

        `priority` (0-9, 9 most urgent) overrides the workflow's for this run: where its
        tasks wait in a busy pool's backlog (a node's own ``priority`` still wins).
        """
        priority = check_priority(priority)
        if run_id is not None and (problem := ev.run_id_problem(run_id)):
            raise InputError(problem)  # before anything is started or sent
        controller = await self._engine()
        name = workflow if isinstance(workflow, str) else workflow.metadata.name
        if isinstance(workflow, Workflow):
            await self.apply(workflow)
            version = workflow.metadata.version
        run_id = run_id or ev.new_run_id(name)
        points = [ev.Breakpoint(node=n) for n in break_before]
        points += [ev.Breakpoint(node=n, position="after") for n in break_after]
        with sending(
            f"start {name}", ev.START_SUBJECT, actorflow__workflow=name, actorflow__run_id=run_id
        ):
            started = await request_start(
                self.nc,
                name,
                dict(inputs or {}),
                version,
                run_id,
                timeout=self.settings.connect_timeout,
                priority=priority,
                breakpoints=points,
            )
            if started is None:
                # Refused, or NATS could not carry it: over Ray, the controller's own error
                # is raised here (a start that did happen is not repeated: same run id).
                started = await _call(
                    controller.start_run.remote(
                        name,
                        dict(inputs or {}),
                        version,
                        run_id,
                        priority,
                        breakpoints=[p.model_dump() for p in points],
                        carrier=carrier() or None,
                    )
                )
        return AsyncRun(self, started)

    async def control(
        self,
        run_id: str,
        action: ev.ControlAction,
        *,
        node: str | None = None,
        from_start: bool = False,
        reason: str = "",
        input: Any = None,
        compensate: bool = False,
        position: ev.BreakPosition = "before",
    ) -> ControlAccepted:
        """Pause, resume, cancel, terminate, retry one node, or approve an approval node.

        Raises ControlError (the run unchanged) when the action does not apply to the run
        as it stands, NotFoundError for an unknown run.
        """
        controller = await self._engine()
        request = {
            "action": action,
            "node": node,
            "from_start": from_start,
            "reason": reason,
            "input": input,
            "compensate": compensate,
            "position": position,
        }
        result: ControlAccepted = await _call(controller.control.remote(run_id, request))
        return result

    async def signal(self, signal: str, key: str, payload: Any = None) -> None:
        """End the waits for (`signal`, `key`): publish on ``af.signal.<signal>.<key>``."""
        data = json.dumps(payload).encode()
        js = await self._jetstream()
        subject = ev.signal_subject(signal, key)
        await _nats(js.publish(subject, data, headers=inject()), self.nats_url)

    def get_run(self, run_id: str) -> AsyncRun:
        return AsyncRun(self, run_id)

    async def runs(
        self,
        status: ev.RunStatus | str | None = None,
        workflow: str | None = None,
        key: str | None = None,
    ) -> list[ev.RunRecord]:
        """Run records, newest first; one pass over the runs bucket. `key`: only the runs
        of that concurrency key."""
        records = [r async for r in read_records(await self._jetstream())]
        wanted = ev.RunStatus(status.upper()) if isinstance(status, str) else status
        return sorted(
            (
                r
                for r in records
                if (wanted is None or r.status == wanted)
                and (workflow is None or r.workflow == workflow)
                and (key is None or (r.concurrency is not None and r.concurrency.key == key))
            ),
            key=lambda r: r.created_at,
            reverse=True,
        )

    async def record(self, run_id: str) -> ev.RunRecord:
        return await read_record(await self._jetstream(), run_id)

    async def stream_stats(self) -> list[dict[str, Any]]:
        out = []
        for name in (ev.STREAM_HISTORY, ev.STREAM_TASKS, ev.STREAM_EVENTS, ev.STREAM_LOGS):
            info = await (await self._jetstream()).stream_info(name)
            state = info.state
            replicas = info.config.num_replicas or 1
            out.append(
                {
                    "stream": name,
                    "messages": state.messages,
                    "bytes": state.bytes,
                    "consumers": state.consumer_count,
                    # On a JetStream cluster: how many servers keep it, and which leads.
                    "replicas": replicas,
                    "leader": info.cluster.leader if info.cluster and replicas > 1 else None,
                }
            )
        return out

    # --- triggers and events ------------------------------------------------------------
    async def _plugin(self, op: str, **args: Any) -> Any:
        return await _call((await self._engine()).plugin_call.remote(op, args))

    async def triggers(self) -> list[TriggerInfo]:
        """Every trigger with its counts (events seen, matched, runs started, errors,
        rejected, active runs) and last event time; sorted by name."""
        js = await self._jetstream()
        records = await trigger_store.triggers(js)
        stats = await trigger_store.stats(js)
        return [
            TriggerInfo(
                trigger=r.trigger,
                enabled=r.enabled,
                stats=stats.get(name) or ev.TriggerStats(name=name),
            )
            for name, r in sorted(records.items())
        ]

    async def trigger(self, name: str) -> TriggerInfo:
        for info in await self.triggers():
            if info.name == name:
                return info
        raise NotFoundError("trigger", name)

    async def enable_trigger(self, name: str) -> None:
        await self._plugin("trigger.enable", name=name)

    async def disable_trigger(self, name: str) -> None:
        """Stop listening: events that arrive while disabled do not start runs later."""
        await self._plugin("trigger.disable", name=name)

    async def delete_trigger(self, name: str) -> None:
        await self._plugin("trigger.delete", name=name)

    async def event_types(self) -> list[EventType]:
        types = await trigger_store.event_types(await self._jetstream())
        return [t for _, t in sorted(types.items())]

    async def delete_event_type(self, name: str) -> None:
        await self._plugin("eventtype.delete", name=name)

    async def webhook_url(self, trigger: str | None = None) -> str:
        """The webhook server's base URL, or a trigger's endpoint on it."""
        base = await trigger_store.webhook_url(await self._jetstream())
        if not base:
            raise TriggerError("the webhook server is not running (see the controller's log)")
        return f"{base}/hooks/{trigger}" if trigger else base

    async def publish(
        self,
        subject: str,
        data: Any,
        *,
        event_type: str | None = None,
        msg_id: str | None = None,
    ) -> PublishResult:
        """Publish a JSON event. It is checked against `event_type` if named, else against
        every declared event type whose subject matches (EventRejectedError if it fails);
        `msg_id` becomes its ``Nats-Msg-Id`` (the event id a trigger dedupes on).

        Returns where it was stored (``stream``, ``seq``) or ``stream: None`` when no
        stream captures the subject (a plain NATS publish, seen only by live subscribers).
        """
        problem = check_pattern(subject)
        if problem or "*" in subject.split(".") or ">" in subject.split("."):
            raise TriggerError(problem or f"publish to a literal subject, not {subject!r}")
        js = await self._jetstream()
        types = await trigger_store.event_types(js)
        if event_type is not None:
            if event_type not in types:
                raise NotFoundError("event type", event_type)
            checks = [types[event_type]]
        else:
            checks = [t for t in types.values() if subject_matches(t.spec.subject, subject)]
        for declared in checks:
            errors = list(
                jsonschema.Draft202012Validator(declared.spec.json_schema).iter_errors(data)
            )
            if errors:
                where = ".".join(str(p) for p in errors[0].absolute_path) or "payload"
                raise EventRejectedError(
                    "schema", f"{where}: {errors[0].message} (event type {declared.metadata.name})"
                )
        body = json.dumps(data).encode()
        headers = inject({ev.MSG_ID: msg_id} if msg_id else None)
        try:
            ack = await _nats(js.publish(subject, body, headers=headers), self.nats_url)
        except NO_STREAM:
            await _nats(self.nc.publish(subject, body, headers=headers), self.nats_url)
            return PublishResult(subject=subject)
        return PublishResult(
            subject=subject, stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate)
        )


class AsyncRun:
    """A handle on one run; cheap, holds nothing but the id."""

    def __init__(self, client: AsyncClient, run_id: str) -> None:
        self._client = client
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"AsyncRun({self.run_id!r})"

    async def status(self) -> ev.RunRecord:
        return await self._client.record(self.run_id)

    async def wait(self, timeout: float | None = None) -> ev.RunRecord:
        """Until the run stops (succeeded, interrupted, terminated); the run is not affected
        by a timeout here."""
        await self._client.connect_nats()
        nc = self._client.nc
        changed = asyncio.Event()

        async def on_event(msg: Msg) -> None:
            # Only a stop is worth a look at the record (written before its event).
            parsed = ev.parse_run_event_subject(msg.subject)
            status = parsed[2].upper() if parsed else ""
            if status not in ev.RunStatus.__members__ or ev.RunStatus(status).finished:
                changed.set()

        sub = await nc.subscribe(ev.run_events_filter(run_id=self.run_id), cb=on_event)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while True:
                changed.clear()
                try:
                    record = await self.status()
                    if record.status.finished:
                        return record
                except (NotFoundError, NatsError):
                    pass  # not recorded yet, or NATS reconnecting: look again shortly
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    raise WaitTimeoutError(f"run {self.run_id} still running after {timeout}s")
                # Events are best effort; re-reading the record each second covers a
                # lifecycle event lost in a reconnect.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(1.0, left or 1.0))
        finally:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()

    async def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The run's outputs; raises RunFailedError (with the node's error) if it failed."""
        record = await self.wait(timeout)
        if record.status is not ev.RunStatus.SUCCEEDED:
            raise RunFailedError(self.run_id, record.status.value, record.node, record.error)
        return dict(record.outputs)

    async def pause(self, reason: str = "") -> None:
        """No new node starts; running ones finish; then the run is PAUSED."""
        await self._client.control(self.run_id, "pause", reason=reason)

    async def resume(self, *, from_start: bool = False, reason: str = "") -> None:
        """Go on from the failed node(s) — or, `from_start`, run every node again."""
        await self._client.control(self.run_id, "resume", from_start=from_start, reason=reason)

    async def cancel(self, reason: str = "", *, compensate: bool = False) -> None:
        """Stop now: INTERRUPTED (cancelled), still resumable. With `compensate`, the
        steps running finish first, then the completed steps' compensations run and the
        run ends COMPENSATED."""
        await self._client.control(self.run_id, "cancel", reason=reason, compensate=compensate)

    async def terminate(self, reason: str = "") -> None:
        """Stop for good: TERMINATED, not resumable."""
        await self._client.control(self.run_id, "terminate", reason=reason)

    async def retry(self, node: str, reason: str = "") -> None:
        """Run a failed node again (with a fresh retry budget) and go on from there."""
        await self._client.control(self.run_id, "retry", node=node, reason=reason)

    async def approve(self, node: str, input: Any = None, reason: str = "") -> None:
        """Approve a waiting approval node; `input` (checked against its schema) becomes
        the node's output."""
        await self._client.control(self.run_id, "approve", node=node, input=input, reason=reason)

    # --- debugging (docs/debugging.md) -----------------------------------------------------
    async def break_at(self, node: str, *, after: bool = False) -> None:
        """Stop the run PAUSED before `node` is scheduled (or, `after`, once it succeeded);
        recorded in the history, so it holds across restarts of every process."""
        position: ev.BreakPosition = "after" if after else "before"
        await self._client.control(self.run_id, "break", node=node, position=position)

    async def clear_break(self, node: str, *, after: bool = False) -> None:
        position: ev.BreakPosition = "after" if after else "before"
        await self._client.control(self.run_id, "unbreak", node=node, position=position)

    async def rerun(self, from_node: str, inputs: dict[str, Any] | None = None) -> AsyncRun:
        """A new run of the same workflow version with the same inputs, in which every node
        upstream of `from_node` is settled from this run's recorded outputs (not executed)
        and `from_node` — its inputs updated with `inputs` — and what follows run again."""
        state = await self._state()
        reuse = reuse_of(state, from_node, inputs)
        started = state.started
        controller = await self._client._engine()
        run_id: str = await _call(
            controller.start_run.remote(
                started.workflow,
                dict(started.inputs),
                started.version,
                None,
                started.priority,
                reuse=reuse.model_dump(mode="json"),
                carrier=carrier() or None,
            )
        )
        return AsyncRun(self._client, run_id)

    async def paused_at(self) -> list[ev.BreakpointHit]:
        """The breakpoints the run is paused at, each held node with the inputs it will
        run with (overrides included); ControlError when it is not at a breakpoint."""
        history = await replay(await self._client._jetstream(), self.run_id, direct=True)
        if not history or not isinstance(history[0].event, ev.RunStarted):
            raise NotFoundError("run", self.run_id)
        state = RunState.from_history(rec.event for rec in history)
        if state.status is not ev.RunStatus.PAUSED or not state.held:
            raise ControlError(
                f"run {self.run_id} is not paused at a breakpoint (it is {state.status.value})"
            )
        return [
            h.model_copy(update={"inputs": state.held_inputs(h.node)})
            if h.position == "before"
            else h
            for h in state.held
        ]

    async def override(self, node: str, inputs: dict[str, Any]) -> None:
        """Replace inputs of the node the run is paused before (these keys over the
        rendered ones); recorded, used when the node is scheduled."""
        await self._client.control(self.run_id, "override", node=node, input=inputs)

    async def step(self) -> None:
        """Run the nodes it is paused at, then stop again before the next ready ones."""
        await self._client.control(self.run_id, "step")

    async def continue_(self) -> None:
        """Go on past the breakpoints it is paused at (a resume)."""
        await self._client.control(self.run_id, "resume")

    async def logs(self, node: str | None = None) -> list[ev.LogLine]:
        """What the run's steps (or one node's) wrote to stdout / stderr and `logging`, so
        far, each line tagged with run, node, attempt and replica.

        A finished step's lines are all there: replicas store them before the result.
        Raises NotFoundError for an unknown run.

        Example:
            ```python
            for line in await run.logs("train"):
                print(line.at, line.key, line.stream, line.text)
            ```
        """
        js = await self._client._jetstream()
        await ensure_run_exists(js, self.run_id)
        return [line async for line in read_logs(js, self.run_id, node)]

    async def follow_logs(
        self, node: str | None = None, *, poll: float = 0.5
    ) -> AsyncGenerator[ev.LogLine, None]:
        """The run's lines so far, then each new one as it is stored, until the run has
        finished (SUCCEEDED, INTERRUPTED or TERMINATED); stop early by breaking out.

        Example:
            ```python
            async for line in run.follow_logs():
                print(line.key, line.text)
            ```
        """
        js = await self._client._jetstream()
        await ensure_run_exists(js, self.run_id)

        async def finished() -> bool:
            try:
                return (await self.status()).status.finished
            except (NotFoundError, NatsError):
                return False  # not recorded yet, or NATS reconnecting: keep following

        following = follow_logs(js, self.run_id, node, finished, poll=poll)
        async with contextlib.aclosing(following):
            async for line in following:
                yield line

    async def nodes(self) -> list[NodeInfo]:
        """Per-node status, attempts, timings and errors, folded from the run's history."""
        return node_infos(await self._state())

    async def _state(self) -> RunState:
        history = await replay(await self._client._jetstream(), self.run_id, direct=True)
        if not history or not isinstance(history[0].event, ev.RunStarted):
            raise NotFoundError("run", self.run_id)
        return RunState.from_history(rec.event for rec in history)

    async def view(self, *, depth: int = 4, logs: bool = True) -> RunView:
        """Everything a picture of the run needs — nodes with their attempts, inputs,
        outputs, errors, guidance and log lines, the edges and their layout — and the child
        runs of its `workflow:` nodes, `depth` levels down (see `actorflow runs report`);
        `logs=False` leaves the log lines out (cheaper, for a view redrawn while the run goes
        on)."""
        state = await self._state()
        record = await self.status()
        lines = await self.logs() if logs else []
        children: dict[str, RunView] = {}
        if depth > 0:
            for info in node_infos(state):
                if info.child_run_id and info.child_run_id not in children:
                    with contextlib.suppress(NotFoundError):  # not started yet
                        child = self._client.get_run(info.child_run_id)
                        children[info.child_run_id] = await child.view(depth=depth - 1, logs=logs)
        return run_view(record, state, lines, children)


def _as_models(
    definitions: AnyDefinition | Iterable[AnyDefinition],
) -> list[AnyDefinition]:
    if isinstance(definitions, AnyDefinition):
        return [definitions]
    return list(definitions)
