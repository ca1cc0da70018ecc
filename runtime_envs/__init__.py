"""Runtime-environment library: `RuntimeEnv` definitions → Ray ``runtime_env`` and resource
levels (placement-group shapes), with the pure checks that a level and a function fit the
cluster's nodes. Imports ``actorflow.definitions`` only — no Ray, no NATS.
"""

from actorflow.runtime_envs.library import (
    NodeCapacity,
    check_function_fits,
    check_level_fits,
    ray_runtime_env,
)

__all__ = ["NodeCapacity", "check_function_fits", "check_level_fits", "ray_runtime_env"]
