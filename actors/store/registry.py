"""Versioned definitions in the definitions KV bucket: ``<kind>.<name>.<version>`` keys
plus a ``latest.<kind>.<name>`` pointer to the most recently applied version."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from actorflow.actors.store.errors import NOT_FOUND, not_found_as
from actorflow.actors.store.streams import read_stream
from actorflow.definitions import events as ev
from actorflow.definitions.models import (
    Connection,
    Definition,
    Function,
    RuntimeEnv,
    StepTemplate,
    Workflow,
)


class Registry:
    """Reads are cached: the controller is the only writer, so its cache stays true, and a
    run start costs no KV round trip per node, nor a parse: callers get one shared model
    per stored definition and must not change it."""

    def __init__(self, js: JetStreamContext, kv: KeyValue) -> None:
        self._js = js
        self._kv = kv
        self._cache: dict[str, bytes] = {}
        self._models: dict[str, Definition] = {}

    async def _read(self, key: str) -> bytes:
        if key not in self._cache:
            self._cache[key] = (await self._kv.get(key)).value or b""
        return self._cache[key]

    async def _write(self, key: str, value: bytes) -> None:
        await self._kv.put(key, value)
        self._cache[key] = value
        self._models.pop(key, None)

    async def _model(self, kind: str, name: str, version: str) -> Definition:
        key = ev.definition_key(kind, name, version)
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = _KINDS[kind].model_validate_json(
                await self._get(kind, name, version)
            )
        return model

    @classmethod
    async def open(cls, js: JetStreamContext) -> Registry:
        return cls(js, await js.key_value(ev.KV_DEFINITIONS))

    async def put(self, definition: Definition) -> bool:
        """Store a definition; returns False when the same version was already identical."""
        meta = definition.metadata
        key = ev.definition_key(definition.kind, meta.name, meta.version)
        data = definition.model_dump_json(by_alias=True).encode()
        try:
            unchanged = await self._read(key) == data
        except NOT_FOUND:
            unchanged = False
        if not unchanged:
            await self._write(key, data)
        await self._write(ev.latest_key(definition.kind, meta.name), meta.version.encode())
        return not unchanged

    async def latest_version(self, kind: str, name: str) -> str:
        with not_found_as(kind.lower(), name):
            return (await self._read(ev.latest_key(kind, name))).decode()

    async def function(self, name: str, version: str = "latest") -> Function:
        if version == "latest":
            version = await self.latest_version("Function", name)
        model = await self._model("Function", name, version)
        assert isinstance(model, Function)
        return model

    async def workflow(self, name: str, version: str | None = None) -> Workflow:
        if version in (None, "latest"):
            version = await self.latest_version("Workflow", name)
        assert version is not None
        model = await self._model("Workflow", name, version)
        assert isinstance(model, Workflow)
        return model

    async def template(self, name: str, version: str = "latest") -> StepTemplate:
        if version == "latest":
            version = await self.latest_version("Template", name)
        model = await self._model("Template", name, version)
        assert isinstance(model, StepTemplate)
        return model

    async def templates(self) -> list[StepTemplate]:
        return [
            StepTemplate.model_validate_json(v)
            for v in await self._values(ev.definitions_prefix("Template"))
        ]

    async def connection(self, name: str, version: str = "latest") -> Connection:
        if version == "latest":
            version = await self.latest_version("Connection", name)
        model = await self._model("Connection", name, version)
        assert isinstance(model, Connection)
        return model

    async def connections(self) -> list[Connection]:
        return [
            Connection.model_validate_json(v)
            for v in await self._values(ev.definitions_prefix("Connection"))
        ]

    async def runtime_env(self, name: str, version: str) -> RuntimeEnv:
        return RuntimeEnv.model_validate_json(await self._get("RuntimeEnv", name, version))

    async def runtime_envs(self) -> list[RuntimeEnv]:
        return [
            RuntimeEnv.model_validate_json(v)
            for v in await self._values(ev.definitions_prefix("RuntimeEnv"))
        ]

    async def delete(self, kind: str, name: str, version: str) -> None:
        """Remove one version; `latest` falls back to the most recently applied other one."""
        await self._get(kind, name, version)  # NotFoundError if absent
        key = ev.definition_key(kind, name, version)
        await self._kv.delete(key)
        self._cache.pop(key, None)
        self._models.pop(key, None)
        if await self.latest_version(kind, name) != version:
            return
        remaining = await self._values(ev.definitions_prefix(kind, name), newest_last=True)
        pointer = ev.latest_key(kind, name)
        if remaining:
            newest = remaining[-1]
            model = _KINDS[kind].model_validate_json(newest)
            await self._write(pointer, model.metadata.version.encode())
        else:
            await self._kv.delete(pointer)
            self._cache.pop(pointer, None)

    async def versions(self, kind: str, name: str) -> list[str]:
        """The registered versions of one definition, oldest applied first."""
        values = await self._values(ev.definitions_prefix(kind, name), newest_last=True)
        return [_KINDS[kind].model_validate_json(v).metadata.version for v in values]

    async def _get(self, kind: str, name: str, version: str) -> bytes:
        with not_found_as(kind.lower(), f"{name}@{version}"):
            return await self._read(ev.definition_key(kind, name, version))

    async def functions(self) -> list[Function]:
        return [
            Function.model_validate_json(v)
            for v in await self._values(ev.definitions_prefix("Function"))
        ]

    async def workflows(self) -> list[Workflow]:
        return [
            Workflow.model_validate_json(v)
            for v in await self._values(ev.definitions_prefix("Workflow"))
        ]

    async def _values(self, prefix: str, *, newest_last: bool = False) -> list[bytes]:
        """Latest value of every key under `prefix`, in one pass over the bucket's stream:
        sorted by key, or by when each was written.

        (A KV key watcher may report "caught up" early while keys are being written; the
        consumer's own pending count does not.)
        """
        subject = ev.kv_filter(ev.KV_DEFINITIONS, prefix)
        out: dict[str, tuple[int, bytes]] = {}
        async for msg in read_stream(
            self._js, ev.kv_stream(ev.KV_DEFINITIONS), subject, DeliverPolicy.LAST_PER_SUBJECT
        ):
            if msg.headers and msg.headers.get(ev.KV_OPERATION):
                out.pop(msg.subject, None)
                continue
            out[msg.subject] = (msg.metadata.sequence.stream, msg.data)
        keys = sorted(out, key=lambda k: out[k][0]) if newest_last else sorted(out)
        return [out[k][1] for k in keys]


_KINDS: dict[
    str,
    type[Function] | type[Workflow] | type[StepTemplate] | type[RuntimeEnv] | type[Connection],
] = {
    "Function": Function,
    "Workflow": Workflow,
    "Template": StepTemplate,
    "RuntimeEnv": RuntimeEnv,
    "Connection": Connection,
}
