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

from actorflow.actors.config import EngineConfig
from actorflow.actors.run.actor import RunActor
from actorflow.actors.store.errors import NOT_FOUND
from actorflow.actors.store.streams import read_records
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
        self._replacing: dict[int, asyncio.Future[None]] = {}

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

    def drive(
        self,
        run_id: str,
        started: bytes | None = None,
        seq: int = 0,
        first: tuple[str, bytes] | None = None,
    ) -> None:
        """Hand the run to a run actor: `started` for a new run (see `RunActor.drive`),
        else it recovers by replay."""
        if run_id in self._driving:
            return
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()
        self._driving[run_id] = asyncio.create_task(self._supervise(run_id, started, seq, first))

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

    async def _supervise(
        self,
        run_id: str,
        started: bytes | None,
        seq: int,
        first: tuple[str, bytes] | None,
    ) -> None:
        """Drive until the driver ends normally; a dead run actor is replaced (once, whoever
        notices first) and the run re-driven by replay; any other failure is retried too,
        with backoff, so no run is ever left RUNNING without a driver."""
        failures = 0
        result: dict[str, Any] = {}
        try:
            while True:
                index = min(self._load, key=lambda i: self._load[i])
                if index in self._replacing:
                    await self._replacing[index]
                actor = self._actors[index]
                self._load[index] += 1
                try:
                    # Unnamed driver tasks keep no task events: 10,000 runs would
                    # otherwise leave 10,000 records in Ray's GCS.
                    call = (
                        actor.drive.options(name=f"run:{run_id}")
                        if self._config.run_task_names
                        else actor.drive.options(enable_task_events=False)
                    )
                    result = await call.remote(run_id, started, seq, first)
                    break
                except ray.exceptions.RayActorError:
                    log.warning("run actor %d died driving %s; re-driving by replay", index, run_id)
                    try:
                        await self._replace(index, actor)
                    except Exception:
                        log.exception("run actor %d could not be replaced yet", index)
                        await asyncio.sleep(1.0)
                except Exception:
                    failures += 1
                    log.exception("driver of %s failed (%d); re-driving", run_id, failures)
                    await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                finally:
                    self._load[index] -= 1
                started, first = None, None  # from now on the run recovers by replay
        finally:
            self._driving.pop(run_id, None)
        if result.get("wake_at"):
            self.wake_at(run_id, datetime.fromisoformat(result["wake_at"]))
        if result.get("status") != "FENCED" and await self._missed_control(run_id, result):
            self.drive(run_id)

    async def _missed_control(self, run_id: str, result: dict[str, Any]) -> bool:
        """A control request appended as the driver was leaving: the driver never saw it."""
        try:
            last = await self._js.get_last_msg(
                ev.STREAM_HISTORY, ev.run_subject(run_id, ev.CONTROL)
            )
        except NOT_FOUND:
            return False
        try:
            control = ev.decode_history(last.data or b"")
        except ev.DecodeError:
            return False
        if not isinstance(control, ev.RunControlled | ev.RunSignalled):
            return False
        return control.id != result.get("last_control")

    async def _replace(self, index: int, dead: Any) -> None:
        """One replacement per dead actor, published only once it is started."""
        if self._actors[index] is not dead:
            return  # already replaced
        pending = self._replacing.get(index)
        if pending is not None:
            await pending
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._replacing[index] = done
        try:
            actor = self._new_actor(f"af-run-actor-{index}-{secrets.token_hex(3)}")
            await actor.start.remote()
            self._actors[index] = actor
        finally:
            del self._replacing[index]
            done.set_result(None)

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
            if record.status in (
                ev.RunStatus.PENDING,
                ev.RunStatus.RUNNING,
                ev.RunStatus.COMPENSATING,
            ):
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
