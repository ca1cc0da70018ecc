"""The run both view modules look at: four nodes, a failing branch handled, log lines, and
an output holding markup (shared by test_run_views and test_report_browser)."""

from __future__ import annotations

import actorflow
from actorflow.definitions.models import Need

HOSTILE = "<script>alert('x')</script>"


def handled_failure() -> actorflow.WorkflowBuilder:
    b = actorflow.WorkflowBuilder("view-report")
    load = b.node("load", "chatty@1", inputs={"tag": "load", "lines": 2})
    b.node(
        "explode",
        "fail@1",
        inputs={"message": "disk is full"},
        needs=[load],
        retry={"max_attempts": 2, "initial_delay": 0.05},
        continue_on="failed",
    )
    b.node(
        "handle", "echo@1", inputs={"value": "handled"}, needs=[Need(node="explode", on="failed")]
    )
    b.node("publish", "echo@1", inputs={"value": HOSTILE}, needs=[load])
    return b
