"""The trigger service: the controller's side of triggers.

It lives in the controller process (the controller is the only component that creates
actors) and

- validates and stores `Trigger` and `EventType` definitions (``AF_TRIGGERS`` KV);
- keeps each enabled trigger's durable JetStream consumer, and the ``AF_INGRESS`` stream
  whose subjects are the union of the trigger subjects, in step with the definitions —
  *before* `apply` returns, so an event published right after it is not missed;
- runs the webhook HTTP server;
- creates the one detached `TriggerHost` actor that consumes every trigger's events, and
  replaces it when it dies.

Durable state is all on JetStream, so a killed host loses nothing: unacknowledged events
are redelivered to its replacement, which starts no second run for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import ray
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from pydantic import ValidationError

from actorflow.actors.config import EngineConfig
from actorflow.actors.store.errors import API_ERROR, NOT_FOUND, reason
from actorflow.actors.store.registry import Registry
from actorflow.definitions import events as ev
from actorflow.definitions.errors import (
    DefinitionError,
    DefinitionIssue,
    NotFoundError,
    TriggerError,
)
from actorflow.definitions.loader import issues_from_validation
from actorflow.definitions.models import EventType, Trigger, split_ref
from actorflow.definitions.subjects import OPEN_INTERNAL, covers, minimal_cover
from actorflow.triggers import store
from actorflow.triggers.evaluate import lifecycle_subjects
from actorflow.triggers.host import HOST_NAME, TriggerHost
from actorflow.triggers.store import TriggerRecord
from actorflow.triggers.webhook import WebhookServer

log = logging.getLogger(__name__)


def consumer_plan(record: TriggerRecord) -> tuple[str, list[str]]:
    """The stream a trigger's consumer reads and its filter subjects."""
    trigger = record.trigger
    source = trigger.spec.source
    if source.subject is not None:
        stream = ev.STREAM_EVENTS if covers(OPEN_INTERNAL, source.subject) else ev.STREAM_INGRESS
        return stream, [source.subject]
    if source.lifecycle is not None:
        return ev.STREAM_EVENTS, lifecycle_subjects(source.lifecycle)
    return ev.STREAM_TRIGGERS, [ev.trigger_events_filter(trigger.metadata.name)]


class TriggerService:
    """The controller plugin for triggers (see `actorflow.actors.controller.ControllerPlugin`)."""

    kinds = frozenset({"Trigger", "EventType"})

    def __init__(self, config: EngineConfig, js: JetStreamContext) -> None:
        self._config = config
        self._js = js
        self._records: dict[str, TriggerRecord] = {}
        self._webhook: WebhookServer | None = None
        self._host: Any = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._records = await store.triggers(self._js)
        await self._sync_ingress(self._records)
        kv = await store.bucket(self._js)
        self._webhook = WebhookServer(
            self._js, self._config.webhook_host, self._config.webhook_port, self._lookup
        )
        try:
            url = await self._webhook.start()
        except OSError as exc:
            log.error("webhook server not started on port %d: %s", self._config.webhook_port, exc)
            self._webhook = None
            url = ""
        await kv.put(ev.WEBHOOK_KEY, url.encode())
        if self._records:
            self._ensure_host()

    def _ensure_host(self) -> None:
        """The host is created with the first trigger: an engine without triggers pays for
        no extra Ray worker (~0.5 s, ~90 MB)."""
        if self._supervisor is None and not self._closing:
            self._supervisor = asyncio.create_task(self._supervise())

    def _lookup(self, name: str) -> TriggerRecord | None:
        return self._records.get(name)  # `_records` is replaced, never mutated

    async def shutdown(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
        if self._webhook is not None:
            await self._webhook.close()
        if self._host is not None:
            with contextlib.suppress(Exception):
                ray.kill(self._host, no_restart=True)

    async def _supervise(self) -> None:
        """Keep one trigger host alive: create (or find) it, start it, and when its
        `serve` call fails because the actor died, create another."""
        while not self._closing:
            try:
                remote: Any = ray.remote(TriggerHost)
                host = remote.options(
                    name=HOST_NAME,
                    namespace=self._config.namespace,
                    lifetime="detached",
                    get_if_exists=True,
                    num_cpus=0,
                    max_restarts=0,
                ).remote(self._config)
                await host.start.remote()
                self._host = host
                await host.reload.remote()  # what was applied while it started
                await host.serve.remote()
            except asyncio.CancelledError:
                raise
            except ray.exceptions.RayActorError:
                log.warning("trigger host died; starting another")
            except Exception:
                log.exception("trigger host failed; starting another")
            self._host = None
            if not self._closing:
                await asyncio.sleep(0.5)

    async def _notify(self) -> None:
        """Tell the host to re-read definitions now (it also does every few seconds)."""
        if self._host is not None:
            with contextlib.suppress(Exception):
                await self._host.reload.remote()

    # --- definitions ---------------------------------------------------------------------
    def _parse(self, documents: list[dict[str, Any]]) -> list[Trigger | EventType]:
        out: list[Trigger | EventType] = []
        issues: list[DefinitionIssue] = []
        for doc in documents:
            model = Trigger if doc.get("kind") == "Trigger" else EventType
            try:
                out.append(model.model_validate(doc))
            except ValidationError as exc:
                issues += issues_from_validation(exc, doc)
        if issues:
            raise DefinitionError(issues)
        return out

    async def check(self, documents: list[dict[str, Any]], workflows: set[str]) -> None:
        """Everything that can be wrong with a batch, before anything is stored; `workflows`
        holds the names and the `name@version` references of the batch's own workflows."""
        parsed = self._parse(documents)
        known_types = set(await store.event_types(self._js)) | {
            d.metadata.name for d in parsed if isinstance(d, EventType)
        }
        registry = await Registry.open(self._js)
        issues: list[DefinitionIssue] = []
        for trigger in (d for d in parsed if isinstance(d, Trigger)):
            spec = trigger.spec
            where = f"trigger {trigger.metadata.name}"
            if spec.event_type and spec.event_type not in known_types:
                issues.append(
                    DefinitionIssue(
                        f"unknown event type {spec.event_type!r}", where, field="spec.eventType"
                    )
                )
            name, version = split_ref(spec.workflow)
            if (version == "latest" and name in workflows) or f"{name}@{version}" in workflows:
                continue  # applied in the same batch
            try:
                await registry.workflow(name, version)
            except NotFoundError:
                issues.append(
                    DefinitionIssue(
                        f"unknown workflow {spec.workflow!r}", where, field="spec.workflow"
                    )
                )
        if issues:
            raise DefinitionError(issues)

    async def apply(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        parsed = self._parse(documents)
        kv = await store.bucket(self._js)
        results: list[dict[str, Any]] = []
        for event_type in (d for d in parsed if isinstance(d, EventType)):
            key = ev.event_type_key(event_type.metadata.name)
            data = event_type.model_dump_json(by_alias=True).encode()
            changed = True
            with contextlib.suppress(Exception):
                changed = (await kv.get(key)).value != data
            await kv.put(key, data)
            results.append(_applied(event_type, changed))
        for trigger in (d for d in parsed if isinstance(d, Trigger)):
            previous = self._records.get(trigger.metadata.name)
            same_source = (
                previous is not None and previous.trigger.spec.source == trigger.spec.source
            )
            record = TriggerRecord(
                trigger=trigger,
                enabled=trigger.spec.enabled,
                applied_at=previous.applied_at if previous and same_source else ev.now(),
            )
            record = record.model_copy(update={"stream": consumer_plan(record)[0]})
            changed = previous is None or previous.trigger != trigger
            await self._set(record, previous)
            results.append(_applied(trigger, changed))
            self._ensure_host()
        await self._notify()
        return results

    async def _set(self, record: TriggerRecord, previous: TriggerRecord | None) -> None:
        """Stream subjects first (so the consumer's stream captures its subject), then the
        consumer, then the stored definition."""
        records = {**self._records, record.name: record}
        await self._sync_ingress(records)
        if previous is not None and (
            not record.enabled or consumer_plan(previous) != consumer_plan(record)
        ):
            await self._delete_consumer(previous)
        if record.enabled:
            await self._ensure_consumer(record)
        kv = await store.bucket(self._js)
        await kv.put(ev.trigger_key(record.name), ev.encode(record))
        self._records = records

    async def _ensure_consumer(self, record: TriggerRecord) -> None:
        stream, filters = consumer_plan(record)
        config = ConsumerConfig(
            durable_name=ev.trigger_consumer(record.name),
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._config.trigger_ack_wait,
            max_ack_pending=record.trigger.spec.max_concurrency,
            max_deliver=-1,
            filter_subject=filters[0] if len(filters) == 1 else None,
            filter_subjects=filters if len(filters) > 1 else None,
        )
        try:
            await self._js.add_consumer(stream, config)
        except API_ERROR as exc:  # e.g. a setting that cannot be updated in place
            log.info("recreating consumer of %s: %s", record.name, exc)
            await self._delete_consumer(record)
            await self._js.add_consumer(stream, config)

    async def _delete_consumer(self, record: TriggerRecord) -> None:
        stream, _ = consumer_plan(record)
        with contextlib.suppress(*NOT_FOUND):
            await self._js.delete_consumer(stream, ev.trigger_consumer(record.name))

    async def _sync_ingress(self, records: dict[str, TriggerRecord]) -> None:
        """``AF_INGRESS`` captures exactly the subjects of the enabled subject triggers."""
        subjects = minimal_cover(
            [
                r.trigger.spec.source.subject
                for r in records.values()
                if r.enabled
                and r.trigger.spec.source.subject is not None
                and consumer_plan(r)[0] == ev.STREAM_INGRESS
            ]
        ) or [ev.IDLE_INGRESS_SUBJECT]
        config = StreamConfig(
            name=ev.STREAM_INGRESS,
            subjects=subjects,
            storage=StorageType.FILE,
            num_replicas=self._config.stream_replicas,
            max_age=7 * 86400.0,
            duplicate_window=120.0,
        )
        try:
            try:
                info = await self._js.stream_info(ev.STREAM_INGRESS)
            except NOT_FOUND:
                await self._js.add_stream(config)
                return
            # Subjects follow the triggers; replicas only ever grow (as `ensure_infrastructure`
            # does: an engine with fewer configured must not take a cluster's away).
            have = info.config.num_replicas or 1
            wanted = self._config.stream_replicas
            if sorted(info.config.subjects or []) != subjects or have < wanted:
                config.num_replicas = max(have, wanted)
                await self._js.update_stream(config)
        except API_ERROR as exc:
            raise TriggerError(
                f"cannot capture subjects {', '.join(subjects)} in stream "
                f"{ev.STREAM_INGRESS}: {reason(exc)}"
            ) from None

    # --- operations ------------------------------------------------------------------------
    async def call(self, op: str, args: dict[str, Any]) -> Any:
        if op in ("trigger.enable", "trigger.disable"):
            return await self._enable(str(args["name"]), op == "trigger.enable")
        if op == "trigger.delete":
            return await self._delete(str(args["name"]))
        if op == "eventtype.delete":
            return await self._delete_event_type(str(args["name"]))
        if op == "host.info":
            return await self._host_info()
        if op == "trigger.workflows":  # which workflow each trigger starts (for deletes)
            return {
                r.trigger.metadata.name: r.trigger.spec.workflow for r in self._records.values()
            }
        raise TriggerError(f"unknown trigger operation {op!r}")

    def _record(self, name: str) -> TriggerRecord:
        record = self._records.get(name)
        if record is None:
            raise NotFoundError("trigger", name)
        return record

    async def _enable(self, name: str, enabled: bool) -> dict[str, Any]:
        record = self._record(name)
        if record.enabled != enabled:
            await self._set(record.model_copy(update={"enabled": enabled}), record)
            await self._notify()
        return {"name": name, "enabled": enabled}

    async def _delete(self, name: str) -> dict[str, Any]:
        record = self._record(name)
        records = {k: v for k, v in self._records.items() if k != name}
        await self._delete_consumer(record)
        await self._sync_ingress(records)
        kv = await store.bucket(self._js)
        for key in (ev.trigger_key(name), ev.stats_key(name)):
            with contextlib.suppress(Exception):
                await kv.delete(key)
        self._records = records
        await self._notify()
        return {"name": name, "deleted": True}

    async def _delete_event_type(self, name: str) -> dict[str, Any]:
        users = sorted(n for n, r in self._records.items() if r.trigger.spec.event_type == name)
        if users:
            raise TriggerError(f"event type {name!r} is used by trigger(s) {', '.join(users)}")
        kv = await store.bucket(self._js)
        if name not in await store.event_types(self._js):
            raise NotFoundError("event type", name)
        await kv.delete(ev.event_type_key(name))
        return {"name": name, "deleted": True}

    async def _host_info(self) -> dict[str, Any]:
        """Where the trigger host runs (tests kill it by pid)."""
        if self._host is None:
            return {"alive": False}
        try:
            info: dict[str, Any] = await self._host.info.remote()
        except ray.exceptions.RayActorError:
            return {"alive": False}  # dead; the supervisor is replacing it
        return {"alive": True, **info}


def _applied(definition: Trigger | EventType, changed: bool) -> dict[str, Any]:
    return {
        "kind": definition.kind,
        "name": definition.metadata.name,
        "version": definition.metadata.version,
        "changed": changed,
    }
