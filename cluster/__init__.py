"""Cluster management: settings (the only place ``ACTORFLOW_*`` is read), starting or
joining Ray and nats-server, ``actorflow up`` / ``down``, and wiring the controller.

May import every engine layer; only the SDK imports it.
"""

from actorflow.cluster.lifecycle import down, status, up
from actorflow.cluster.settings import Settings

__all__ = ["Settings", "down", "status", "up"]
