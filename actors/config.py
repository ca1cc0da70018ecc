"""What the actors need to know about their surroundings, passed in (never read from env)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    nats_url: str
    namespace: str = "actorflow"
    inline_limit: int = 256 * 1024
    run_actors: int = 2
    stream_replicas: int = 1
    task_ack_wait: float = 15.0
    record_interval: float = 0.25
    history_max_age_days: float = 0.0
    autoscale_interval: float = 0.5
    drain_timeout: float = 120.0
    start_wait: float = 60.0
    level_ready_timeout: float = 60.0
    # triggers: the webhook server's address (port 0: any free port), how many runs started
    # by triggers may be active at once (all triggers together), and how long a trigger's
    # held event may go without a heartbeat before it is redelivered
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8780
    trigger_concurrency: int = 1000
    trigger_ack_wait: float = 10.0
