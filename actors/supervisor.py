"""Who drives which run, and what happens when a driver ends or dies.

The supervisor lives in the controller. It hands each active run to the least-loaded run
actor, re-drives a run by replay when its run actor dies, wakes WAITING runs when their
timer is due (never early: the driver re-checks the time), and re-drives a run whose
driver stopped while a control request was arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import datetime
from typing import Any

import ray
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actorflow.actors.config import EngineConfig
from actorflow.actors.history import read_records
from actorflow.actors.run_actor import RunActor
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)


class RunSupervisor:
    def __init__(self, config: EngineConfig, js: JetStreamContext) -> None:
        self._config = config
        self._js = js
        self._actors: list[Any] = []
        self._load: dict[int, int] = {}
        self._driving: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    async def start(self) -> None:
        self._actors = [
            self._new_actor(f"af-run-actor-{i}") for i in range(self._config.run_actors)
        ]
        await asyncio.gather(*(a.start.remote() for a in self._actors))
        self._load = dict.fromkeys(range(len(self._actors)), 0)

    @property
    def active(self) -> int:
        return len(self._driving)

    def is_driving(self, run_id: str) -> bool:
        return run_id in self._driving

    def drive(self, run_id: str, started: dict[str, Any] | None = None, seq: int = 0) -> None:
        """Hand the run to a run actor: `started` for a new run, else it recovers by replay."""
        if run_id in self._driving:
            return
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()
        index = min(self._load, key=lambda i: self._load[i])
        self._load[index] += 1
        ref = self._actors[index].drive.options(name=f"run:{run_id}").remote(run_id, started, seq)
        self._driving[run_id] = asyncio.create_task(self._supervise(run_id, index, ref))

    def wake_at(self, run_id: str, when: datetime) -> None:
        """Drive the run again at `when` (a WAITING run's timer)."""
        loop = asyncio.get_running_loop()
        delay = max((when - ev.now()).total_seconds(), 0.0)
        old = self._timers.pop(run_id, None)
        if old is not None:
            old.cancel()
        self._timers[run_id] = loop.call_later(delay, self._fire, run_id)

    def _fire(self, run_id: str) -> None:
        self._timers.pop(run_id, None)
        self.drive(run_id)

    async def _supervise(self, run_id: str, index: int, ref: Any) -> None:
        try:
            result: dict[str, Any] = await ref
        except ray.exceptions.RayActorError:
            log.warning("run actor %d died driving %s; re-driving by replay", index, run_id)
            await self._replace(index)
            self._release(run_id, index)
            self.drive(run_id)
            return
        except Exception:
            log.exception("driver of %s failed", run_id)
            self._release(run_id, index)
            return
        self._release(run_id, index)
        if result.get("wake_at"):
            self.wake_at(run_id, datetime.fromisoformat(result["wake_at"]))
        if result.get("status") != "FENCED" and await self._missed_control(run_id, result):
            self.drive(run_id)

    def _release(self, run_id: str, index: int) -> None:
        self._load[index] -= 1
        self._driving.pop(run_id, None)

    async def _missed_control(self, run_id: str, result: dict[str, Any]) -> bool:
        """A control request appended as the driver was leaving: the driver never saw it."""
        try:
            last = await self._js.get_last_msg(
                ev.STREAM_HISTORY, ev.run_subject(run_id, ev.CONTROL)
            )
        except NotFoundError:
            return False
        try:
            control = ev.decode_history(last.data or b"")
        except ev.DecodeError:
            return False
        if not isinstance(control, ev.RunControlled | ev.RunSignalled):
            return False
        return control.id != result.get("last_control")

    async def _replace(self, index: int) -> None:
        old = self._actors[index]
        try:
            await old.active.remote()
            return  # still alive: another supervisor already replaced it
        except ray.exceptions.RayActorError:
            pass
        actor = self._new_actor(f"af-run-actor-{index}-{secrets.token_hex(3)}")
        self._actors[index] = actor
        await actor.start.remote()

    def _new_actor(self, name: str) -> Any:
        """Run actors reserve no CPU: they wait on NATS; the CPUs belong to functions."""
        remote: Any = ray.remote(RunActor)
        return remote.options(
            name=name, namespace=self._config.namespace, num_cpus=0, max_concurrency=100_000
        ).remote(self._config, name)

    async def recover(self) -> int:
        """Re-drive every run that was active; re-arm the timers of WAITING ones."""
        count = 0
        async for record in read_records(self._js):
            if record.status in (ev.RunStatus.PENDING, ev.RunStatus.RUNNING):
                self.drive(record.run_id)
                count += 1
            elif record.status is ev.RunStatus.WAITING and record.wake_at is not None:
                self.wake_at(record.run_id, record.wake_at)
                count += 1
        return count

    def shutdown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
