"""The one codec: a message to bytes and back; bytes that are no known message raise
`DecodeError` (of the error tree in `actorflow.definitions.errors`)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import TypeAdapter
from pydantic import ValidationError as _PydanticValidationError

from actorflow.definitions.errors import DecodeError
from actorflow.definitions.events.history import HistoryEvent
from actorflow.definitions.events.values import Message

_HISTORY: TypeAdapter[HistoryEvent] = TypeAdapter(HistoryEvent)
_M = TypeVar("_M", bound=Message)


def encode(message: Message) -> bytes:
    """The JSON of `message`, its ``type`` and ``v`` included (and every null field)."""
    return message.model_dump_json(exclude_none=False).encode()


def decode_history(data: bytes) -> HistoryEvent:
    """Any event of a run's history, told apart by its ``type``."""
    try:
        return _HISTORY.validate_json(data)
    except _PydanticValidationError as exc:
        raise DecodeError(f"not a history event: {exc.errors()[0]['msg']}") from exc


def decode(model: type[_M], data: bytes) -> _M:
    """One message of a known `model`; fields it lacks (an older writer's) take defaults."""
    try:
        return model.model_validate_json(data)
    except _PydanticValidationError as exc:
        raise DecodeError(f"not a {model.__name__}: {exc.errors()[0]['msg']}") from exc
