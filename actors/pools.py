"""Function pools: a fixed set of replica actors per (function, version), placed by Ray."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import ray
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as NatsNotFoundError

from actorflow.actors.config import EngineConfig
from actorflow.actors.handlers import HandlerImportError
from actorflow.actors.replica import FunctionReplica, ensure_consumer_config
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ActorflowError
from actorflow.definitions.models import Function

log = logging.getLogger(__name__)

_REPLICA_START_TIMEOUT = 300.0


class FunctionPoolError(ActorflowError):
    """A function's pool cannot run: its handler does not import or nothing can host it."""


@dataclass
class FunctionPool:
    function: Function
    replicas: list[Any] = field(default_factory=list)
    placements: list[dict[str, Any]] = field(default_factory=list)
    stopping: bool = False

    @property
    def key(self) -> str:
        return self.function.ref

    def describe(self) -> dict[str, Any]:
        spec = self.function.spec
        return {
            "function": self.function.metadata.name,
            "version": self.function.metadata.version,
            "handler": spec.handler,
            "replicas": len(self.replicas),
            "desired": spec.replicas,
            "max_concurrency": spec.max_concurrency,
            "resources": spec.resources.model_dump(exclude_defaults=True),
            "nodes": sorted({p.get("node_id", "") for p in self.placements}),
        }


def check_fits(function: Function) -> None:
    """Refuse at apply time a request no alive node could ever satisfy (it would hang)."""
    res = function.spec.resources
    want = {"CPU": res.cpus, "GPU": res.gpus, "memory": float(res.memory or 0), **res.custom}
    want = {k: v for k, v in want.items() if v}
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node.get("Alive") and all(node["Resources"].get(k, 0) >= v for k, v in want.items()):
            return
    raise FunctionPoolError(
        f"function {function.ref}: no node of the Ray cluster has {want} "
        "(check cpus / gpus / memory / custom resources)"
    )


async def start_pool(
    function: Function, config: EngineConfig, js: JetStreamContext
) -> FunctionPool:
    """Create the pool's durable consumer and its replicas; wait until each is pulling."""
    check_fits(function)
    cfg = ensure_consumer_config(function, config)
    try:
        await js.consumer_info(ev.STREAM_TASKS, cfg.durable_name or "")
        await js.add_consumer(ev.STREAM_TASKS, cfg)  # updates ack_wait & co. if changed
    except NatsNotFoundError:
        await js.add_consumer(ev.STREAM_TASKS, cfg)
    pool = FunctionPool(function)
    for i in range(function.spec.replicas):
        pool.replicas.append(_new_replica(function, config, f"{_base_name(function)}-{i}"))
    try:
        pool.placements = list(
            await asyncio.wait_for(
                asyncio.gather(*(r.start.remote() for r in pool.replicas)),
                _REPLICA_START_TIMEOUT,
            )
        )
    except Exception as exc:
        await stop_pool(pool, drain=False)
        cause = _root_cause(exc)
        if isinstance(cause, HandlerImportError):
            raise FunctionPoolError(f"function {function.ref}: {cause}") from None
        raise FunctionPoolError(
            f"function {function.ref}: replicas failed to start: {cause}"
        ) from exc
    return pool


def _base_name(function: Function) -> str:
    return f"af-fn-{function.metadata.name}-{function.metadata.version}"


def _new_replica(function: Function, config: EngineConfig, name: str) -> Any:
    """The one place a replica is created: with its function's resources, in the engine's
    namespace (several engines can share one Ray cluster)."""
    res = function.spec.resources
    options: dict[str, Any] = {
        "name": name,
        "namespace": config.namespace,
        "num_cpus": res.cpus,
        "num_gpus": res.gpus,
        "max_concurrency": max(1000, function.spec.max_concurrency * 4),
    }
    if res.memory:
        options["memory"] = res.memory
    if res.custom:
        options["resources"] = dict(res.custom)
    payload = function.model_dump(mode="json", by_alias=True)
    remote: Any = ray.remote(FunctionReplica)
    return remote.options(**options).remote(payload, config, name)


async def watch_pool(pool: FunctionPool, config: EngineConfig) -> None:
    """Keep the pool at its size: a replica that dies is replaced. Its unacknowledged
    tasks are redelivered by NATS meanwhile, so nothing is lost."""

    async def keep(i: int) -> None:
        while not pool.stopping:
            replica = pool.replicas[i]
            try:
                await replica.serve.remote()
                return  # stopped on purpose
            except ray.exceptions.RayActorError:
                if pool.stopping:
                    return
                log.warning("replica %d of %s died; replacing it", i, pool.key)
            name = f"{_base_name(pool.function)}-{i}-{secrets.token_hex(3)}"
            fresh = _new_replica(pool.function, config, name)
            try:
                placement = await fresh.start.remote()
            except Exception as exc:
                log.error("replica %d of %s not replaced: %s", i, pool.key, exc)
                await asyncio.sleep(1.0)
                continue
            pool.replicas[i], pool.placements[i] = fresh, placement

    await asyncio.gather(*(keep(i) for i in range(len(pool.replicas))))


async def stop_pool(pool: FunctionPool, *, drain: bool = True) -> None:
    pool.stopping = True
    if drain:
        await asyncio.gather(*(r.stop.remote() for r in pool.replicas), return_exceptions=True)
    for replica in pool.replicas:
        ray.kill(replica, no_restart=True)
    pool.replicas.clear()


def _root_cause(exc: BaseException) -> BaseException:
    """Ray wraps an actor's exception; dig out the one the replica raised."""
    cause: BaseException = exc
    for _ in range(5):
        inner = getattr(cause, "cause", None) or cause.__cause__
        if inner is None or inner is cause:
            break
        cause = inner
    return cause
