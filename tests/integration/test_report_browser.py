"""`runs report`'s page opened in a real headless Chromium (Debian's `chromium`, driven by
Playwright; never a browser Playwright downloads): it renders with no script error and
shows every node, the failed node's error code and one timeline bar per attempt.

``ACTORFLOW_UPDATE_SCREENSHOT=1`` also writes the screenshot the docs show
(docs/images/run-report.png).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from report_support import HOSTILE, handled_failure

import actorflow
from actorflow import RunStatus

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
#: What works on a closed network: no sandbox (root in a container), no GPU, nothing that
#: phones home, a profile of its own.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = Path(__file__).parents[2] / "docs" / "images" / "run-report.png"


def test_the_report_renders_in_chromium(
    client: actorflow.Client, cli_env: dict[str, str], tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (`make chromium`, or apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    wf = handled_failure().build()
    client.apply(wf)
    run = client.run(wf.metadata.name, {})
    assert run.wait(timeout=120).status is RunStatus.SUCCEEDED
    view = run.view()
    page_file = tmp_path / "run.html"
    written = subprocess.run(
        [sys.executable, "-m", "actorflow.cli", "runs", "report", run.run_id, "-o", str(page_file)],
        env={**cli_env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert written.returncode == 0, written.stderr

    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "request", lambda r: None if r.url.startswith("file:") else errors.append(r.url)
            )
            page.goto(page_file.as_uri(), wait_until="load")
            for node in view.nodes:
                box = page.locator(f'svg.dag g.node[data-node="{node.id}"]')
                assert box.is_visible(), node.id
                assert node.id in (box.text_content() or "")
                assert page.locator(f"section.node h3:has-text('{node.id}')").first.is_visible()
            code = page.locator('svg.dag g.node[data-node="explode"] text.code')
            assert (code.text_content() or "").strip() == "[HANDLER_ERROR]"
            assert code.is_visible()
            attempts = sum(
                1 for n in view.nodes for t in n.tasks for a in t.attempts if a.started_at
            )
            assert attempts == 5  # load, explode twice, publish, handle
            assert page.locator("svg.gantt rect.bar").count() == attempts
            assert page.locator('svg.gantt rect.bar[data-node="explode"]').count() == 2
            assert page.get_by_text(HOSTILE).first.is_visible()  # shown as text, not run
            shot = tmp_path / "run-report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("ACTORFLOW_UPDATE_SCREENSHOT") == "1":
                DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, DOCS_SCREENSHOT)
        finally:
            context.close()
    assert errors == []
