"""Runtime-environment library: `RuntimeEnv` definitions → Ray runtime_env and levels."""
