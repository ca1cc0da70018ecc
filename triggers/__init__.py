"""Triggers: external events (NATS subjects, schedules, webhooks, lifecycle events) → runs.

``service`` is the controller plugin that owns the ``Trigger`` and ``EventType`` kinds;
``host`` is the detached actor that listens; ``evaluate``, ``schedule`` and the subject
logic are pure cores. May import ``actorflow.actors`` and below, never ``cluster`` or the SDK.
"""

from actorflow.triggers.host import TriggerHost
from actorflow.triggers.service import TriggerService

__all__ = ["TriggerHost", "TriggerService"]
