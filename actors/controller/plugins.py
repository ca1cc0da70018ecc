"""Hosting a controller plugin (the triggers service) behind a protocol.

The controller knows its plugin only through `ControllerPlugin`, because the layers above
(``actorflow.triggers``) import the actors layer, never the other way round; the wiring
passes the factory in.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from nats.js import JetStreamContext

from actorflow.actors.config import EngineConfig
from actorflow.definitions.errors import ActorflowError

log = logging.getLogger(__name__)

Document = dict[str, Any]


class ControllerPlugin(Protocol):
    """A service that lives in the controller (triggers): it owns the definition `kinds` it
    names, is started after recovery, and may create and supervise actors of its own."""

    kinds: frozenset[str]

    async def start(self) -> None: ...

    async def check(self, documents: list[Document], workflows: set[str]) -> None: ...

    async def apply(self, documents: list[Document]) -> list[Document]: ...

    async def call(self, op: str, args: dict[str, Any]) -> Any: ...

    async def shutdown(self) -> None: ...


PluginFactory = Callable[[EngineConfig, JetStreamContext], ControllerPlugin]


class PluginHost:
    """Owns the plugin's life and routes the documents of its kinds to it."""

    def __init__(self, factory: PluginFactory | None) -> None:
        self._factory = factory
        self._plugin: ControllerPlugin | None = None

    async def start(self, config: EngineConfig, js: JetStreamContext) -> None:
        if self._factory is not None:
            self._plugin = self._factory(config, js)
            await self._plugin.start()

    def split(self, documents: list[Document]) -> tuple[list[Document], list[Document]]:
        """The documents of the plugin's kinds (applied after workflows, so a trigger can
        name a workflow of the same batch), and the rest."""
        kinds = self._plugin.kinds if self._plugin is not None else frozenset()
        mine = [d for d in documents if d.get("kind") in kinds]
        return mine, [d for d in documents if d.get("kind") not in kinds]

    async def check(self, documents: list[Document], workflows: set[str]) -> None:
        if documents and self._plugin is not None:
            await self._plugin.check(documents, workflows)

    async def apply(self, documents: list[Document]) -> list[Document]:
        if documents and self._plugin is not None:
            return await self._plugin.apply(documents)
        return []

    async def call(self, op: str, args: dict[str, Any]) -> Any:
        """An operation of the plugin (e.g. ``trigger.enable``), for the SDK and CLI."""
        if self._plugin is None:
            raise ActorflowError("this controller runs no triggers")
        return await self._plugin.call(op, args)

    async def shutdown(self) -> None:
        if self._plugin is not None:
            with contextlib.suppress(Exception):
                await self._plugin.shutdown()
