"""The controller's function pools: one per ``name@version``, their levels, and the
autoscaling loop that resizes every pool from its queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.js import JetStreamContext

from actorflow.actors.config import EngineConfig
from actorflow.actors.functions.placement import Levels
from actorflow.actors.functions.pools import FunctionPool, PoolStatus
from actorflow.definitions.models import Function, ResourceLevel, RuntimeEnv

log = logging.getLogger(__name__)


class PoolManager:
    def __init__(self, config: EngineConfig, js: JetStreamContext) -> None:
        self._config = config
        self._js = js
        self._pools: dict[str, FunctionPool] = {}
        self._levels = Levels(config.namespace, config.level_ready_timeout)
        self._autoscaler: asyncio.Task[None] | None = None
        self.autoscale_rounds = 0

    def start_autoscaling(self) -> None:
        self._autoscaler = asyncio.create_task(self._autoscale())

    def get(self, ref: str) -> FunctionPool | None:
        return self._pools.get(ref)

    def needs_start(self, function: Function) -> bool:
        """A pool is (re)started only when its definition changed, or it could not serve."""
        pool = self._pools.get(function.ref)
        return pool is None or pool.function != function or pool.failure is not None

    async def start(self, function: Function, env: RuntimeEnv | None) -> FunctionPool:
        """Start the new pool before the old one drains: both pull from the same durable
        consumer, so queued tasks never wait on a pool that is going away."""
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
            old_level = _level_of(old)
            if old_level and old_level != level:
                await self._levels.release(old_level, function.ref)
        return pool

    async def remove(self, ref: str) -> None:
        """Stop a deleted version's pool and give back its share of the level."""
        pool = self._pools.pop(ref, None)
        if pool is None:
            return
        await pool.stop()
        with contextlib.suppress(Exception):  # NATS away: they are re-created by a re-apply
            await pool.delete_consumers()
        level = _level_of(pool)
        if level:
            await self._levels.release(level, pool.key)

    def _uses_level(self, ref: str, level: ResourceLevel) -> bool:
        pool = self._pools.get(ref)
        return pool is not None and _level_of(pool) == level

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
            self.autoscale_rounds += 1

    def describe(self) -> list[PoolStatus]:
        return [pool.describe() for pool in self._pools.values()]

    def levels(self) -> list[dict[str, Any]]:
        return self._levels.describe()

    async def shutdown(self) -> None:
        if self._autoscaler is not None:
            self._autoscaler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._autoscaler
        await asyncio.gather(*(p.stop() for p in self._pools.values()), return_exceptions=True)


def _level_of(pool: FunctionPool) -> ResourceLevel | None:
    return pool.env.spec.level if pool.env else None
