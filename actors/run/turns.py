"""Whose turn it is in a concurrency queue: a pure fold over the queue's log.

A queue is one subject, ``af.queue.<queue>``, of `QueueEntry` lines in stream order: a run
*enqueues* a place when it starts and *releases* it when it finishes. The rules:

- the queue's order is the order of first enqueues; a repeated enqueue (a retried
  publish, a second driver) changes nothing;
- a released place stays released: a late duplicate enqueue does not bring it back;
- a place is *admitted* when fewer unreleased places than its own limit are ahead of it.

Admission is monotonic: places ahead of a place can only leave (new ones queue behind),
so a place that is admitted once stays admitted until it is released. A run that reads
"admitted" and records it (`RunAdmitted`) never has to take it back, and with one limit L
per queue at most L unreleased places are admitted at any moment.

The log is compacted from the front (`QueueLog.cut`): everything before the first
unreleased place may be purged. A reader whose view predates a purge forgets what was
purged (`QueueLog.forget_before`): a purged place was released.

No NATS here: the run actor reads the log (actors/run/queue.py) and asks this fold.
"""

from __future__ import annotations

from dataclasses import dataclass

from actorflow.definitions.events import QueueOp


@dataclass(frozen=True)
class Line:
    """One line of a queue's log: the `QueueEntry` at stream sequence `seq`."""

    seq: int
    op: QueueOp
    entry: str
    run_id: str
    limit: int = 1


@dataclass(frozen=True)
class Turn:
    """Where a place stands: admitted or not, how many unreleased places are ahead of it,
    its sequence in the log, and the admitted places ahead (what it waits for)."""

    admitted: bool
    ahead: int
    seq: int
    holders: tuple[Line, ...] = ()


class QueueLog:
    """The fold of one queue's log; lines must be applied in stream order."""

    def __init__(self) -> None:
        self._places: dict[str, Line] = {}  # unreleased places, in log order
        self._released: set[str] = set()
        self.last_seq = 0

    def apply(self, line: Line) -> None:
        """Fold one line in; a line at or before the last one folded is skipped (re-read)."""
        if line.seq <= self.last_seq:
            return
        self.last_seq = line.seq
        if line.op == "release":
            self._released.add(line.entry)
            self._places.pop(line.entry, None)
        elif line.entry not in self._released and line.entry not in self._places:
            self._places[line.entry] = line

    def advance(self, seq: int) -> None:
        """A line at `seq` that could not be read: nothing to fold, but it was seen."""
        self.last_seq = max(self.last_seq, seq)

    def forget_before(self, seq: int) -> None:
        """The log now starts at `seq`: places enqueued before it were purged, so they were
        released (compaction never passes an unreleased place)."""
        for entry in [e for e, line in self._places.items() if line.seq < seq]:
            del self._places[entry]
            self._released.add(entry)

    def live(self) -> list[Line]:
        """The unreleased places, in queue order."""
        return list(self._places.values())

    def released(self, entry: str) -> bool:
        return entry in self._released

    def turn(self, entry: str) -> Turn | None:
        """Where `entry` stands; None when it holds no place (not enqueued, or released)."""
        holders: list[Line] = []
        for ahead, line in enumerate(self._places.values()):
            if line.entry == entry:
                return Turn(ahead < line.limit, ahead, line.seq, tuple(holders))
            if ahead < line.limit:
                holders.append(line)
        return None

    def admitted(self) -> list[Line]:
        """Every place that is admitted now."""
        return [line for ahead, line in enumerate(self._places.values()) if ahead < line.limit]

    def cut(self) -> int:
        """The sequence before which every line may be purged: the first unreleased place
        (or, when none is left, just past the last line)."""
        first = next(iter(self._places.values()), None)
        return first.seq if first is not None else self.last_seq + 1
