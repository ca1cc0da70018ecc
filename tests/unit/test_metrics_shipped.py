"""The Grafana dashboard and the alert rules in deploy/ use only metrics the engine has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from actorflow.actors.metrics import CATALOGUE, PREFIX

DEPLOY = Path(__file__).parents[2] / "deploy"
_NAME = re.compile(r"\bactorflow_[a-z_]+")


def _exported() -> set[str]:
    """Every sample name the endpoint can carry (histograms as their three series)."""
    names = set()
    for name, (kind, _, _) in CATALOGUE.items():
        full = PREFIX + name
        names |= (
            {f"{full}_bucket", f"{full}_sum", f"{full}_count"} if kind == "histogram" else {full}
        )
    return names


def _alert_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def _dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "actorflow.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_used_exists(source: str) -> None:
    exprs = _alert_exprs() if source == "alerts" else _dashboard_exprs()
    used = {m for e in exprs for m in _NAME.findall(e)}
    assert used, "no actorflow metric used at all"
    assert used <= _exported(), sorted(used - _exported())


def test_the_alerts_cover_failure_rate_queue_wait_and_backlog() -> None:
    exprs = "\n".join(_alert_exprs())
    assert 'actorflow_runs_total{status="INTERRUPTED"}' in exprs
    assert "histogram_quantile(0.99" in exprs
    assert "actorflow_task_queue_wait_seconds_bucket" in exprs
    assert "deriv(actorflow_function_queue_depth" in exprs


@pytest.mark.parametrize("expr", _alert_exprs() + _dashboard_exprs())
def test_every_expression_is_balanced(expr: str) -> None:
    depth = 0
    for ch in expr:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        assert depth >= 0, expr
    assert depth == 0, expr
