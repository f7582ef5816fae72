"""A notebook's link to the docs opens the page in JupyterLab (real Chromium, the plain Lab of
test_browser_viewer.py).

A workspace as a first start leaves it (tests/notebooks/test_docs_in_workspace.py checks the
files): the worked example ``tomography.ipynb`` and ``docs/tomo.md`` beside it, put into the
Lab's root through Jupyter's contents API.  Clicking the notebook's rendered link to
``docs/tomo.md`` must open that page in a Lab tab, not a browser download or a 404.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
from test_browser_viewer import lab  # noqa: F401 - the module's plain-Lab fixture

pytestmark = [pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BEAMHUB_TEST_ARTIFACTS", "test-artifacts"))


def _put(lab, path: str, model: dict) -> None:
    request = urllib.request.Request(
        f"{lab['url']}/api/contents/{path}?token={lab['token']}",
        data=json.dumps(model).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status in (200, 201)


def test_notebook_link_to_docs_opens_the_page_in_lab(lab, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    _put(lab, "docs", {"type": "directory"})
    _put(lab, "docs/tomo.md", {"type": "file", "format": "text", "content": (REPO / "docs" / "tomo.md").read_text()})
    _put(
        lab,
        "tomography.ipynb",
        {
            "type": "notebook",
            "format": "json",
            "content": json.loads((REPO / "notebooks" / "tomography.ipynb").read_text()),
        },
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{lab['url']}/lab/tree/tomography.ipynb?reset&token={lab['token']}")
        # Lab resolves the href to a files URL; the text is the notebook's own
        link = page.locator(".jp-RenderedMarkdown a", has_text="docs/tomo.md").first
        link.wait_for(state="visible")
        link.click()
        # the page opens in a Lab tab of its own, titled by the file, showing the page's text
        tab = page.locator(".lm-TabBar-tab:has-text('tomo.md')")
        tab.wait_for(state="visible")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-MainAreaWidget:not(.lm-mod-hidden)')]"
            ".some(w => w.textContent.includes('find_center_vo'))"
        )
        page.screenshot(path=str(ARTIFACTS / "docs-link-opened.png"))
    finally:
        page.close()
