"""The API's web page (``/ui``) in a real headless Chromium (Debian's, driven by
Playwright): sign in with a token, start a run and watch its DAG finish, edit a graph."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_support import serving

import actorflow
from actorflow.cluster.settings import Settings

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
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
WORKFLOW = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: api-ui, version: "1"}
spec:
  nodes:
    - id: a
      function: echo@1
      inputs: {value: "<b>not markup</b>"}
    - id: b
      function: echo@1
      needs: [a]
"""
WAIT_MS = 60_000


def test_sign_in_run_watch_and_edit_in_chromium(
    client: actorflow.Client, settings: Settings
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (`make chromium`, or apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    with serving(settings) as served:
        token = served.token("api-ui-admin", {"*": "admin"})
        auth = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=served.url, headers=auth, timeout=60) as http:
            applied = http.post(
                "/api/v1/workflows", content=WORKFLOW, headers={"content-type": "application/yaml"}
            )
            assert applied.status_code == 200, applied.text
            with sync_api.sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
                try:
                    errors: list[str] = []
                    page = browser.new_page()
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    page.on(
                        "console",
                        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
                    )
                    page.goto(f"{served.url}/ui")
                    page.fill("#token", token)
                    page.click("#signin")
                    page.wait_for_selector('tr[data-workflow="api-ui"]', timeout=WAIT_MS)
                    page.click('button[data-run="api-ui"]')
                    # (selectors, not script: the page's CSP allows no eval)
                    page.wait_for_selector('#run-status:text-is("SUCCEEDED")', timeout=WAIT_MS)
                    for node in ("a", "b"):
                        shown = page.locator(f'#run-dag g[data-node="{node}"]')
                        shown.wait_for(timeout=WAIT_MS)
                    page.wait_for_selector(
                        '#run-dag g[data-node="b"][data-status="SUCCEEDED"]', timeout=WAIT_MS
                    )
                    run_id = page.text_content("#run-id") or ""
                    assert http.get(f"/api/v1/runs/{run_id}").json()["record"]["status"] == (
                        "SUCCEEDED"
                    )
                    # edit the graph: add c after b, then drop that dependency
                    page.click('tr[data-workflow="api-ui"] td')
                    page.wait_for_selector('#graph-dag g[data-node="b"]', timeout=WAIT_MS)
                    page.fill("#node-id", "c")
                    page.fill("#node-function", "echo@1")
                    page.fill("#node-needs", "b")
                    page.click('#add-node button[type="submit"]')
                    page.wait_for_selector('#graph-dag g[data-node="c"]', timeout=WAIT_MS)
                    two = http.get("/api/v1/workflows/api-ui/versions/2").json()
                    assert two["spec"]["nodes"][2]["needs"] == ["b"]
                    page.select_option("#edge-node", "c")
                    page.select_option("#edge-needs", "b")
                    page.click("#remove-edge-btn")
                    page.wait_for_selector('#graph-version:text-is("3")', timeout=WAIT_MS)
                    three = http.get("/api/v1/workflows/api-ui/versions/3").json()
                    assert not three["spec"]["nodes"][2].get("needs")
                    assert errors == []
                    # a wrong token is told so, on the page
                    other = browser.new_page()
                    other.goto(f"{served.url}/ui")
                    other.fill("#token", "af_0000_wrong")
                    other.click("#signin")
                    other.wait_for_selector('#error:has-text("not valid")', timeout=WAIT_MS)
                    assert other.is_hidden("#app")
                finally:
                    browser.close()
