"""Whether a node runs, is skipped, or waits — from how its needs ended. Pure, no I/O.

The rule, per need (``on`` defaults to ``succeeded``):

=============  =============  ==============  ==============
need ``on``    need SUCCEEDED need SKIPPED    need FAILED
=============  =============  ==============  ==============
succeeded      met            passed over     unmet (met with ``continueOn: failed``)
failed         unmet          unmet           met
skipped        unmet          met             unmet
finished       met            met             met
=============  =============  ==============  ==============

A node runs when every need is met or passed over and at least one is met (a join after an
if/else runs; a chain under a false condition is skipped); any unmet need skips it. A node
without needs runs. A need still running — or FAILED with nobody handling the failure,
which stops the run instead — keeps it waiting. Only then is its ``when`` asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from actorflow.definitions.events import NodeStatus
from actorflow.definitions.models import NeedKind


class Gate(StrEnum):
    WAIT = "wait"
    RUN = "run"
    SKIP = "skip"


# What one settled need says, by its `on` and how it ended.
_MET, _PASSED, _UNMET = "met", "passed", "unmet"
_TABLE: Mapping[NeedKind, Mapping[NodeStatus, str]] = {
    "succeeded": {
        NodeStatus.SUCCEEDED: _MET,
        NodeStatus.SKIPPED: _PASSED,
        NodeStatus.FAILED: _UNMET,
    },
    "failed": {
        NodeStatus.SUCCEEDED: _UNMET,
        NodeStatus.SKIPPED: _UNMET,
        NodeStatus.FAILED: _MET,
    },
    "skipped": {
        NodeStatus.SUCCEEDED: _UNMET,
        NodeStatus.SKIPPED: _MET,
        NodeStatus.FAILED: _UNMET,
    },
    "finished": {
        NodeStatus.SUCCEEDED: _MET,
        NodeStatus.SKIPPED: _MET,
        NodeStatus.FAILED: _MET,
    },
}
SETTLED = frozenset({NodeStatus.SUCCEEDED, NodeStatus.SKIPPED, NodeStatus.FAILED})


def gate(
    needs: Mapping[str, NeedKind],
    ended: Mapping[str, NodeStatus],
    *,
    continues: frozenset[str] = frozenset(),
) -> Gate:
    """`ended` is each need's status as its dependants see it (SUCCEEDED, SKIPPED, FAILED
    for good, or anything else while it is not settled); `continues` are the needs whose
    failure is non-fatal for their dependants (``continueOn: failed``)."""
    met = False
    for need, on in needs.items():
        status = ended.get(need, NodeStatus.PENDING)
        if status not in SETTLED:
            return Gate.WAIT
        verdict = _TABLE[on][status]
        if verdict == _UNMET and on == "succeeded" and need in continues:
            verdict = _MET
        if verdict == _UNMET:
            return Gate.SKIP
        met = met or verdict == _MET
    return Gate.RUN if met or not needs else Gate.SKIP
