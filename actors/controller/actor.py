"""The controller: one detached, named actor — a thin shell over the services it owns.

It is the only component that creates actors. On start it rebuilds everything from
JetStream — definitions from the KV bucket, function pools from the definitions, and every
unfinished run from the runs bucket — so a restart of the whole cluster resumes work
without anyone asking. Each job lives in a service of its own: definitions
(`DefinitionService`), function pools (`PoolManager`), starting runs (`RunStarter`),
control requests (`ControlService`), the triggers plugin (`PluginHost`), the run actors
(`RunSupervisor`) and the metrics (`MetricsService`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import ray
from nats.aio.client import Client as NatsClient

from actorflow.actors.config import EngineConfig
from actorflow.actors.controller.control import ControlService
from actorflow.actors.controller.definitions import DefinitionService
from actorflow.actors.controller.plugins import ControllerPlugin, PluginFactory, PluginHost
from actorflow.actors.controller.pool_state import PoolManager
from actorflow.actors.controller.results import Applied, ControlAccepted, Deleted, EngineInfo
from actorflow.actors.controller.starter import RunStarter
from actorflow.actors.functions.pools import PoolStatus
from actorflow.actors.metrics import MetricsService
from actorflow.actors.run import signals
from actorflow.actors.run.supervisor import RunSupervisor
from actorflow.actors.store.jetstream import connect, ensure_infrastructure
from actorflow.actors.store.registry import Registry
from actorflow.actors.store.tracing import flush as flush_traces
from actorflow.actors.store.tracing import start_process
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)

CONTROLLER_NAME = "actorflow-controller"


@dataclass
class _Services:
    nc: NatsClient
    pools: PoolManager
    runs: RunSupervisor
    definitions: DefinitionService
    starter: RunStarter
    control: ControlService
    signals: asyncio.Task[None]
    metrics: MetricsService


def _restarted() -> bool:
    """A restart of a Ray actor (not a first start, and not outside Ray: unit tests)."""
    if not ray.is_initialized():
        return False
    context = ray.get_runtime_context()
    return context.get_actor_id() is not None and context.was_current_actor_reconstructed


class Controller:
    def __init__(self, config: EngineConfig, plugin: PluginFactory | None = None) -> None:
        self._config = config
        self._plugin = PluginHost(plugin)
        self._services: _Services | None = None
        self._start_lock = asyncio.Lock()
        if _restarted():
            # Ray brought this actor back after its process died. Start now: the runs
            # whose drivers died with it are recovered here, and no client may come.
            ray.get_runtime_context().current_actor.start.remote()

    def __repr__(self) -> str:
        active = self._services.runs.active if self._services else 0
        return f"Controller({active} active runs)"

    @property
    def _s(self) -> _Services:
        if self._services is None:
            raise RuntimeError("the controller is not started")
        return self._services

    async def start(self) -> EngineInfo:
        """Idempotent: connect, create infrastructure, restore pools, recover runs."""
        async with self._start_lock:
            if self._services is not None:
                return self.info()
            start_process(self._config.tracing, "controller")
            nc = await connect(self._config.nats_url, name=CONTROLLER_NAME)
            js = nc.jetstream()
            await ensure_infrastructure(js, self._config)
            registry = await Registry.open(js)
            runs = RunSupervisor(self._config, js)
            await runs.start()
            pools = PoolManager(self._config, js)
            definitions = DefinitionService(registry, pools, self._plugin)
            await definitions.restore_pools()
            pools.start_autoscaling()
            recovered = await runs.recover()
            control = ControlService(js, registry, runs)
            await nc.subscribe(ev.control_filter(), cb=control.on_message)
            starter = RunStarter(js, registry, runs, self._config)
            await nc.subscribe(ev.START_SUBJECT, cb=starter.on_request)
            routing = asyncio.create_task(signals.route(js, control.wake))
            await self._plugin.start(self._config, js)
            metrics = MetricsService(js, self._config, pools.describe)
            await metrics.start()
            self._services = _Services(
                nc=nc,
                pools=pools,
                runs=runs,
                definitions=definitions,
                starter=starter,
                control=control,
                signals=routing,
                metrics=metrics,
            )
            log.info("controller started; recovered %d unfinished runs", recovered)
            return self.info()

    def info(self) -> EngineInfo:
        s = self._services
        return EngineInfo(
            nats_url=self._config.nats_url,
            run_actors=self._config.run_actors,
            active_runs=s.runs.active if s else 0,
            autoscale_rounds=s.pools.autoscale_rounds if s else 0,
            metrics_url=s.metrics.url if s else "",
            metrics_error=s.metrics.error if s else "",
        )

    # --- definitions and pools ------------------------------------------------------------
    async def apply(self, documents: list[dict[str, Any]]) -> list[Applied]:
        return await self._s.definitions.apply(documents)

    async def delete(self, kind: str, ref: str) -> Deleted:
        return await self._s.definitions.delete(kind, ref)

    async def runtime_envs(self) -> list[dict[str, Any]]:
        return await self._s.definitions.runtime_envs()

    async def pools(self) -> list[PoolStatus]:
        return self._s.pools.describe()

    async def levels(self) -> list[dict[str, Any]]:
        return self._s.pools.levels()

    # --- runs -------------------------------------------------------------------------------
    async def start_run(
        self,
        workflow: str,
        inputs: dict[str, Any],
        version: str | None = None,
        run_id: str | None = None,
        priority: int | None = None,
        *,
        breakpoints: list[dict[str, Any]] | None = None,
        reuse: dict[str, Any] | None = None,
        carrier: dict[str, str] | None = None,
    ) -> str:
        """Start a run (`carrier`: the caller's W3C trace headers, if it traces)."""
        points = [ev.Breakpoint.model_validate(b) for b in breakpoints or []]
        reused = ev.Reuse.model_validate(reuse) if reuse is not None else None
        return await self._s.starter.start(
            workflow,
            inputs,
            version,
            run_id,
            priority=priority,
            breakpoints=points,
            reuse=reused,
            carrier=carrier,
        )

    async def control(self, run_id: str, request: dict[str, Any]) -> ControlAccepted:
        return await self._s.control.control(run_id, request)

    # --- plugin (triggers) ------------------------------------------------------------------
    async def plugin_call(self, op: str, args: dict[str, Any]) -> Any:
        return await self._plugin.call(op, args)

    async def shutdown(self) -> None:
        """Stop pools and run actors; runs in flight resume on the next start."""
        s = self._services
        await self._plugin.shutdown()
        if s is None:
            return
        s.signals.cancel()
        await s.metrics.close()
        await s.pools.shutdown()
        s.runs.shutdown()
        await s.nc.drain()
        await asyncio.to_thread(flush_traces)


__all__ = ["CONTROLLER_NAME", "Controller", "ControllerPlugin", "PluginFactory"]
