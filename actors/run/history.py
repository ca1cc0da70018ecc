"""Append to and replay a run's history on JetStream, with the fence on decisions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext

from actorflow.actors.store.direct import DirectGetUnsupportedError, read_direct
from actorflow.actors.store.retry import is_wrong_last_sequence, with_retries
from actorflow.actors.store.streams import read_stream
from actorflow.actors.store.tracing import inject
from actorflow.definitions import events as ev
from actorflow.definitions.errors import FencedError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    event: ev.HistoryEvent
    subject: str
    seq: int


class DecisionLog:
    """The decisions subject of one run, appended only under the expected-sequence fence."""

    def __init__(self, js: JetStreamContext, run_id: str, last_seq: int, incarnation: str) -> None:
        self._js = js
        self._incarnation = incarnation
        self._subject = ev.run_subject(run_id, ev.DECISIONS)
        self._run_id = run_id
        self.last_seq = last_seq

    async def append(self, event: Any) -> int:
        """Append or raise FencedError: the server refuses it if anyone appended since us."""
        headers = {
            ev.EXPECTED_LAST_SUBJECT_SEQ: str(self.last_seq),
            # Unique per incarnation: a retry of our own append is deduplicated, while a
            # rival incarnation's append at the same sequence meets the fence instead.
            ev.MSG_ID: ev.decision_msg_id(self._run_id, self.last_seq, self._incarnation),
        }
        data = ev.encode(event)
        headers = inject(headers) or headers
        try:
            ack = await with_retries(
                lambda: self._js.publish(self._subject, data, headers=headers),
                f"append to {self._subject}",
            )
        except Exception as exc:
            if is_wrong_last_sequence(exc):
                raise FencedError(f"run {self._run_id}: another incarnation appended") from exc
            raise
        self.last_seq = ack.seq
        return ack.seq


async def replay(js: JetStreamContext, run_id: str, *, direct: bool = False) -> list[Recorded]:
    """Every event of a run, in stream order; undecodable messages are logged and skipped.

    `direct`: by batched direct gets, a tenth of the cost, for readers that may miss an
    event written a moment ago (see `store.direct`) — never the driver that folds and
    appends. Falls back to a consumer on a server without batched direct gets."""
    out: list[Recorded] = []
    subject = ev.run_history_filter(run_id)
    if direct:
        try:
            async for stored in read_direct(js, ev.STREAM_HISTORY, subject):
                _decoded(out, stored.data, stored.subject, stored.seq)
            return out
        except DirectGetUnsupportedError:
            pass
    async for msg in read_stream(js, ev.STREAM_HISTORY, subject):
        _decoded(out, msg.data, msg.subject, msg.metadata.sequence.stream)
    return out


def _decoded(out: list[Recorded], data: bytes, subject: str, seq: int) -> None:
    try:
        out.append(Recorded(ev.decode_history(data), subject, seq))
    except ev.DecodeError as exc:
        log.error("skipping undecodable event at seq %s: %s", seq, exc)
