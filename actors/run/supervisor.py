"""Who drives which run, and what happens when a driver ends or dies.

The supervisor lives in the controller. It hands each active run to the least-loaded run
actor, re-drives a run by replay when its run actor dies, wakes WAITING runs when their
timer is due (never early: the driver re-checks the time), and re-drives a run whose
driver stopped while a control request was arriving. Ray reports a dead run actor at
once, but not a frozen one (SIGSTOP, a hung process): the supervisor probes its run actors
and replaces one that stops answering (see `_probe`).
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
        # Run actors found unresponsive: id(handle) -> set when found so; the retired
        # ones (handle -> when) are killed once they answer again, or after drain_timeout.
        self._lost: dict[int, asyncio.Future[None]] = {}
        self._retired: dict[Any, float] = {}
        self._prober: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._actors = [
            self._new_actor(f"af-run-actor-{i}") for i in range(self._config.run_actors)
        ]
        await asyncio.gather(*(a.start.remote() for a in self._actors))
        self._load = dict.fromkeys(range(len(self._actors)), 0)
        self._prober = asyncio.create_task(self._probe())

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
                    result = await self._unless_lost(
                        actor, call.remote(run_id, started, seq, first)
                    )
                    break
                except (ray.exceptions.RayActorError, _UnresponsiveError):
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

    def _lost_signal(self, actor: Any) -> asyncio.Future[None]:
        return self._lost.setdefault(id(actor), asyncio.get_running_loop().create_future())

    async def _unless_lost(self, actor: Any, ref: Any) -> dict[str, Any]:
        """The driver's result, or `_UnresponsiveError` as soon as its run actor is found so:
        the run is then re-driven elsewhere, and the new incarnation's claim fences the
        frozen one should it ever wake."""
        drive: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(ref)
        lost = self._lost_signal(actor)
        either: set[asyncio.Future[Any]] = {drive, lost}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if drive.done():
            return drive.result()
        drive.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no warning
        raise _UnresponsiveError

    async def _probe(self) -> None:
        """A run actor that leaves a probe unanswered for five ack waits (15 s at least) is
        replaced and every run it drove re-driven by replay. A busy or starved one answers
        late, not never: the wait is long so that re-driving cannot add to an overload. A
        dead one is left to the drivers' calls, which see it at once."""
        wait = max(5 * self._config.task_ack_wait, 15.0)
        while True:
            await asyncio.sleep(self._config.task_ack_wait)
            actors = [(i, a) for i, a in enumerate(self._actors) if i not in self._replacing]
            retired = list(self._retired)
            answers = await asyncio.gather(
                *(self._answers(a, wait) for _, a in actors),
                *(self._answers(a, self._config.task_ack_wait) for a in retired),
            )
            for (index, actor), ok in zip(actors, answers, strict=False):
                if not ok and self._actors[index] is actor:
                    log.warning("run actor %d does not answer; replacing it", index)
                    self._retired.setdefault(actor, asyncio.get_running_loop().time())
                    lost = self._lost_signal(actor)
                    if not lost.done():
                        lost.set_result(None)
                    await self._replace_quietly(index, actor)
            now = asyncio.get_running_loop().time()
            for actor, ok in zip(retired, answers[len(actors) :], strict=True):
                if ok or now - self._retired[actor] > self._config.drain_timeout:
                    del self._retired[actor]
                    self._lost.pop(id(actor), None)
                    with contextlib.suppress(Exception):
                        ray.kill(actor, no_restart=True)

    @staticmethod
    async def _answers(actor: Any, timeout: float) -> bool:
        try:
            # No task events: a probe every ack wait for the engine's life would pile up
            # records in Ray's GCS.
            probe = actor.active.options(enable_task_events=False).remote()
            await asyncio.wait_for(asyncio.ensure_future(probe), timeout)
        except ray.exceptions.RayActorError:
            return True  # dead, not frozen: its drivers' calls report it
        except Exception:  # no answer in time
            return False
        return True

    async def _replace_quietly(self, index: int, actor: Any) -> None:
        try:
            await self._replace(index, actor)
        except Exception:
            log.exception("run actor %d could not be replaced yet", index)

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
        if self._prober is not None:
            self._prober.cancel()
        for timer in self._timers.values():
            timer.cancel()
        for actor in [*self._actors, *self._retired]:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)


class _UnresponsiveError(Exception):
    """A run actor stopped answering probes: its drivers' results will not come."""
