"""What the built-in step handlers may use of the replica that runs them: its NATS
connection and the engine's settings (a `workflow:` step starts and watches a child run).

Set once per replica process when it starts; a user's handler has no use for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client as NatsClient

from actorflow.actors.config import EngineConfig


@dataclass(frozen=True)
class EngineLink:
    nc: NatsClient
    config: EngineConfig


_link: EngineLink | None = None


def connect(nc: NatsClient, config: EngineConfig) -> None:
    global _link
    _link = EngineLink(nc, config)


def current() -> EngineLink:
    if _link is None:
        raise RuntimeError("no replica in this process: built-in steps run on a function pool")
    return _link
