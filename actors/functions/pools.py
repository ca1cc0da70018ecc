"""Function pools: the replica actors of one (function, version), sized by the autoscaler.

Every replica pulls from the pool's durable consumers (one per priority, `intake.py`), so
the queue — not the pool — owns the tasks: a replica that dies, is drained or was never
started loses nothing, and a pool scaled to zero leaves its tasks waiting durably until the
first replica of a cold start pulls them.

A pool whose replicas cannot start at all (the runtime environment fails to install, the
handler stops importing) does not leave runs hanging: it answers every task with a
non-retryable `TaskFailed` carrying the error, so the runs go INTERRUPTED and say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import ray
from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict, Field
from ray.util.placement_group import PlacementGroup
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actorflow.actors.config import EngineConfig
from actorflow.actors.functions.autoscaler import Scaler, needed
from actorflow.actors.functions.handlers import HandlerImportError
from actorflow.actors.functions.intake import (
    Intake,
    delete_consumers,
    ensure_consumers,
    read_backlog,
)
from actorflow.actors.functions.placement import cluster_nodes
from actorflow.actors.functions.replica import FunctionReplica
from actorflow.actors.store.retry import with_retries
from actorflow.actors.store.tracing import continued, inject
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ErrorCode, FunctionPoolError
from actorflow.definitions.models import Function, RuntimeEnv
from actorflow.runtime_envs.library import check_function_fits, ray_runtime_env

log = logging.getLogger(__name__)


def check_fits(function: Function, env: RuntimeEnv | None = None) -> None:
    """Refuse at apply time a request no alive node (or no bundle of its level) could ever
    satisfy: it would otherwise wait for ever."""
    check_function_fits(function, cluster_nodes(), env.spec.level if env else None)


@dataclass
class _Replica:
    name: str
    handle: Any
    placement: dict[str, Any] | None = None  # None until it is pulling


class _PoolBrokenError(Exception):
    """A replica failed in a way another replica would too: the pool is broken."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PoolStatus(BaseModel):
    """A pool as `functions list` shows it: replicas ready / desired (+ starting and
    draining), the autoscaler's bounds, the queue behind it, and why it cannot serve."""

    model_config = ConfigDict(frozen=True)

    function: str
    version: str
    handler: str
    runtime_env: str | None = None
    level: str | None = None
    replicas: int
    starting: int = 0
    draining: int = 0
    desired: int
    min: int
    max: int
    pending: int = 0
    pending_by_priority: dict[int, int] = Field(default_factory=dict)  # those with any
    in_flight: int = 0
    max_concurrency: int
    resources: dict[str, Any] = Field(default_factory=dict)
    nodes: list[str] = Field(default_factory=list)
    error: str | None = None
    unobserved: str = ""  # why the last look at the queue failed, if it did

    @property
    def ref(self) -> str:
        return f"{self.function}@{self.version}"


class FunctionPool:
    def __init__(
        self,
        function: Function,
        config: EngineConfig,
        js: JetStreamContext,
        *,
        env: RuntimeEnv | None = None,
        group: PlacementGroup | None = None,
    ) -> None:
        self.function = function
        self.env = env
        self._group = group
        self._config = config
        self._js = js
        self._replicas: dict[str, _Replica] = {}
        self._serial = 0  # replicas this pool has created: each one's number in the dashboard
        self._draining: dict[str, _Replica] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._scaler = Scaler(desired=0)
        self._pending = 0
        self._in_flight = 0
        self._waiting: dict[int, int] = {}  # pending per priority (those with any)
        self._stopping = False
        self._retry_after = 0.0
        self.failure: _PoolBrokenError | None = None
        self._unobserved = ""  # why the last look at the queue failed, if it did

    @property
    def key(self) -> str:
        return self.function.ref

    # --- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the durable consumer and the first replicas, and wait until they pull.

        At least one replica starts even for ``min: 0`` — it proves the handler imports in
        its environment, so a bad path is an error of `apply`, not of the first run; the
        autoscaler lets it go after ``downDelay`` when no work comes.
        """
        await ensure_consumers(self._js, self.function, self._config)  # one per priority
        first = max(self.function.spec.replicas.min, 1)
        self._scaler = Scaler(desired=first)
        starting = asyncio.gather(*(self._add_replica() for _ in range(first)))
        try:
            # Bounded: a cluster that is full right now must not hold `apply` for the
            # minutes a replica may wait for capacity; it goes on starting in the pool.
            await asyncio.wait_for(asyncio.shield(starting), self._config.start_wait)
        except TimeoutError:
            log.warning("pool %s: replicas still starting (waiting for capacity?)", self.key)
            self._spawn(self._finish_start(starting))
        except _PoolBrokenError as exc:
            if exc.code is ErrorCode.HANDLER_IMPORT_FAILED:
                await self.stop(drain=False)
                raise FunctionPoolError(f"function {self.key}: {exc.message}") from None
            self._fail(exc)
        except Exception as exc:
            await self.stop(drain=False)
            raise FunctionPoolError(
                f"function {self.key}: replicas failed to start: {exc}"
            ) from exc

    async def _finish_start(self, starting: asyncio.Future[Any]) -> None:
        try:
            await starting
        except _PoolBrokenError as exc:
            self._fail(exc)
        except Exception as exc:
            log.warning("pool %s: a replica did not start: %s", self.key, exc)

    async def stop(self, *, drain: bool = True) -> None:
        """Stop every replica; with `drain`, each first finishes what it is running."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        victims = [*self._replicas.values(), *self._draining.values()]
        self._replicas.clear()
        if drain:
            await asyncio.gather(*(self._drain(r) for r in victims), return_exceptions=True)
        for replica in victims:
            with contextlib.suppress(Exception):
                ray.kill(replica.handle, no_restart=True)

    # --- scaling ---------------------------------------------------------------------------
    async def tick(self, now: float) -> None:
        """One autoscaler step: observe the queue, decide, add or drain replicas."""
        if self._stopping or self.failure is not None:
            return
        try:
            backlog = await read_backlog(self._js, self.function)  # every priority's
        except Exception as exc:  # NATS away for a moment: keep the size we have
            log.debug("pool %s not observed: %s", self.key, exc)
            self._unobserved = f"{type(exc).__name__}: {exc}"
            return
        self._unobserved = ""
        self._pending, self._in_flight = backlog.total, backlog.in_flight
        self._waiting = {p: n for p, n in backlog.pending.items() if n}
        bounds = self.function.spec.replicas
        need = needed(self._pending, self._in_flight, self.function.spec.target_per_replica, bounds)
        self._scaler = self._scaler.step(need, now, bounds)
        await self._resize(self._scaler.desired, now)

    async def _resize(self, desired: int, now: float) -> None:
        live = len(self._replicas)
        if desired > live and now >= self._retry_after:
            for _ in range(desired - live):
                self._spawn(self._grow())
        elif desired < live:
            for replica in await self._least_busy(live - desired):
                self._replicas.pop(replica.name, None)
                self._draining[replica.name] = replica
                self._spawn(self._retire(replica))

    async def _grow(self) -> None:
        try:
            await self._add_replica()
        except _PoolBrokenError as exc:
            self._fail(exc)
        except Exception as exc:
            # Transient (a node went away mid-start): the next tick tries again, not at once.
            log.warning("pool %s: a replica did not start: %s", self.key, exc)
            self._retry_after = time.monotonic() + 5.0

    async def _least_busy(self, count: int) -> list[_Replica]:
        """Idle replicas go first; one still starting counts as the least busy of all."""
        ready = list(self._replicas.values())

        async def load(r: _Replica) -> int:
            if r.placement is None:
                return -1
            try:
                stats = await asyncio.wait_for(r.handle.stats.remote(), 5.0)
                return int(stats["in_flight"])
            except Exception:
                return -1

        loads = await asyncio.gather(*(load(r) for r in ready))
        ranked = sorted(zip(loads, range(len(ready)), strict=True))
        return [ready[i] for _, i in ranked[:count]]

    async def _retire(self, replica: _Replica) -> None:
        try:
            await self._drain(replica)
        finally:
            with contextlib.suppress(Exception):
                ray.kill(replica.handle, no_restart=True)
            self._draining.pop(replica.name, None)

    async def _drain(self, replica: _Replica) -> None:
        """Let in-flight tasks finish (bounded): what is still running after the drain
        timeout is redelivered to another replica, with the same idempotency key."""
        if replica.placement is None:
            return
        try:
            await asyncio.wait_for(replica.handle.stop.remote(), self._config.drain_timeout)
        except Exception as exc:
            log.warning("replica %s not drained cleanly: %s", replica.name, exc)

    # --- replicas --------------------------------------------------------------------------
    async def _add_replica(self) -> None:
        self._serial += 1
        name = f"af-fn-{self.function.metadata.name}-{self.function.metadata.version}-" + (
            secrets.token_hex(3)
        )
        replica = _Replica(name, self._new_handle(name, self._serial))
        self._replicas[name] = replica
        try:
            replica.placement = await asyncio.wait_for(
                replica.handle.start.remote(), self._config.replica_start_timeout
            )
        except BaseException as exc:
            self._replicas.pop(name, None)
            with contextlib.suppress(Exception):
                ray.kill(replica.handle, no_restart=True)
            raise _classify(exc) from exc
        self._spawn(self._watch(replica))

    async def _watch(self, replica: _Replica) -> None:
        """A replica that dies leaves the pool; the next tick starts another if the pool
        still wants it. Its unacknowledged tasks are redelivered by NATS meanwhile."""
        try:
            await replica.handle.serve.remote()
        except ray.exceptions.RayActorError:
            if replica.name in self._replicas:
                log.warning("replica %s of %s died", replica.name, self.key)
        finally:
            self._replicas.pop(replica.name, None)

    def _new_handle(self, name: str, serial: int) -> Any:
        """The one place a replica is created: with its function's resources, labels,
        environment and level, in the engine's namespace."""
        spec = self.function.spec
        res = spec.resources
        options: dict[str, Any] = {
            "name": name,
            "namespace": self._config.namespace,
            "num_cpus": res.cpus,
            "num_gpus": res.gpus,
            "max_concurrency": max(1000, spec.max_concurrency * 4),
        }
        if res.memory:
            options["memory"] = res.memory
        if res.custom:
            options["resources"] = dict(res.custom)
        if spec.node_labels:
            options["label_selector"] = dict(spec.node_labels)
        runtime_env = ray_runtime_env(self.env)
        if runtime_env:
            options["runtime_env"] = runtime_env
        if self._group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self._group, placement_group_bundle_index=-1
            )
        payload = self.function.model_dump(mode="json", by_alias=True)
        remote: Any = ray.remote(FunctionReplica)
        return remote.options(**options).remote(payload, self._config, name, serial)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- a pool that cannot serve --------------------------------------------------------
    def _fail(self, exc: _PoolBrokenError) -> None:
        if self.failure is not None:
            return
        log.error("pool %s cannot serve: %s", self.key, exc.message)
        self.failure = exc
        self._spawn(self._refuse_tasks())

    async def _refuse_tasks(self) -> None:
        """Answer each queued task (of every priority) with the pool's error, so its run
        stops and says why."""
        assert self.failure is not None
        intake = Intake(self._js, self.function, self._config)
        await intake.open()
        try:
            while not self._stopping:
                try:
                    msgs = await intake.pull(32)
                except Exception as exc:
                    log.debug("pool %s: fetch failed: %s", self.key, exc)
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    with continued(msg.headers):
                        await self._refuse(msg.data)
                    await msg.ack()
        finally:
            await intake.close()

    async def delete_consumers(self) -> None:
        """A deleted version: its consumers go too (queued tasks stay in the stream)."""
        await delete_consumers(self._js, self.function)

    async def _refuse(self, data: bytes) -> None:
        assert self.failure is not None
        try:
            task = ev.decode(ev.TaskScheduled, data)
        except ev.DecodeError:
            return
        at = ev.now()
        event = ev.TaskFailed(
            run_id=task.run_id,
            task=task.task,
            error=ev.ErrorInfo(
                code=self.failure.code,
                message=f"function {self.key}: {self.failure.message}",
                retryable=False,
            ),
            execution=ev.Execution(started_at=at, finished_at=at),
        )
        js, subject = self._js, ev.result_subject(task.run_id, task.task)
        headers = inject({ev.MSG_ID: ev.result_msg_id(task.idempotency_key)}) or {}
        await with_retries(lambda: js.publish(subject, ev.encode(event), headers=headers), "refuse")

    # --- listing ---------------------------------------------------------------------------
    def describe(self) -> PoolStatus:
        spec = self.function.spec
        placements = [r.placement for r in self._replicas.values() if r.placement]
        return PoolStatus(
            function=self.function.metadata.name,
            version=self.function.metadata.version,
            handler=spec.handler,
            runtime_env=spec.runtime_env,
            level=self.env.spec.level.name if self.env and self.env.spec.level else None,
            replicas=len(placements),
            starting=len(self._replicas) - len(placements),
            draining=len(self._draining),
            desired=self._scaler.desired,
            min=spec.replicas.min,
            max=spec.replicas.max,
            pending=self._pending,
            pending_by_priority=dict(self._waiting),
            in_flight=self._in_flight,
            max_concurrency=spec.max_concurrency,
            resources=spec.resources.model_dump(exclude_defaults=True),
            nodes=sorted({p.get("node_id", "") for p in placements}),
            error=self.failure.message if self.failure else None,
            unobserved=self._unobserved,
        )


def _classify(exc: BaseException) -> BaseException:
    """Errors every replica would hit become `_PoolBrokenError`; others stay as they are."""
    cause = _root_cause(exc)
    if isinstance(cause, HandlerImportError):
        return _PoolBrokenError(ErrorCode.HANDLER_IMPORT_FAILED, str(cause))
    text = f"{type(cause).__name__}: {cause}"
    if isinstance(cause, ray.exceptions.RuntimeEnvSetupError) or "RuntimeEnvSetupError" in text:
        return _PoolBrokenError(
            ErrorCode.RUNTIME_ENV_FAILED, f"runtime environment failed to set up: {text}"
        )
    return exc


def _root_cause(exc: BaseException) -> BaseException:
    """Ray wraps an actor's exception; dig out the one the replica raised."""
    cause: BaseException = exc
    for _ in range(5):
        inner = getattr(cause, "cause", None) or cause.__cause__
        if inner is None or inner is cause:
            break
        cause = inner
    return cause
