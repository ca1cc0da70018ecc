"""Shared by both tiers: markers are applied by folder so `-m` selects a tier."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (
            Path(str(item.fspath)).parts[-2] == "integration"
            or "integration" in Path(str(item.fspath)).parts
        ):
            item.add_marker(pytest.mark.integration)
