"""The store layer: what the engines keep in JetStream and how they reach it.

Stream and bucket setup, the definitions registry (KV), the object store for large values,
reading streams to their end, reading captured logs, the one table of NATS errors
(``errors``) and retrying through a server restart (``retry``). Imports
``actorflow.definitions`` and nats-py only.
"""

from actorflow.actors.store.blobs import BlobStore
from actorflow.actors.store.errors import NOT_FOUND, not_found_as, translate
from actorflow.actors.store.jetstream import connect, ensure_infrastructure
from actorflow.actors.store.log_reader import ensure_run_exists, follow_logs, read_logs
from actorflow.actors.store.registry import Registry
from actorflow.actors.store.retry import is_wrong_last_sequence, with_retries
from actorflow.actors.store.streams import read_record, read_records, read_stream

__all__ = [
    "NOT_FOUND",
    "BlobStore",
    "Registry",
    "connect",
    "ensure_infrastructure",
    "ensure_run_exists",
    "follow_logs",
    "is_wrong_last_sequence",
    "not_found_as",
    "read_logs",
    "read_record",
    "read_records",
    "read_stream",
    "translate",
    "with_retries",
]
