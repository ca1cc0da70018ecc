"""Shared by both tiers: markers are applied by folder so `-m` selects a tier."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# A 2-core machine shared with Ray: a property's example may take longer than Hypothesis's
# 200 ms default without anything being wrong; the properties, not the clock, are tested.
settings.register_profile("actorflow", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("actorflow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (
            Path(str(item.fspath)).parts[-2] == "integration"
            or "integration" in Path(str(item.fspath)).parts
        ):
            item.add_marker(pytest.mark.integration)
