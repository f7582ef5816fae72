"""The 3-D view frames the object on first render: a real Chromium screenshot of the k3d canvas.

The complaint was an isosurface that is "a small shape in a large canvas": k3d's auto-fit backs
off until the bounding sphere of the scene fits with 50 % to spare, and the viewer test's ball
covered 1.8 % of its 968x321 canvas (44 % of its height).  Here JupyterLab (the plain Lab of
test_browser_viewer.py) opens a notebook showing a VolumeViewer of a small ball off-centre in a
mostly empty 64³ box, as a phased image sits in its oversampled box; the screenshot of the 3-D
canvas must be at least ``MIN_COVER`` non-background pixels, and the object must not touch the
canvas's edges (framed, not cropped).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pytest
from test_browser_viewer import _pixels, lab  # noqa: F401 - the module's plain-Lab fixture

pytestmark = [pytest.mark.browser]

ARTIFACTS = Path(os.environ.get("BEAMHUB_TEST_ARTIFACTS", "test-artifacts"))

#: Share of the canvas the ball must cover.  The camera puts the ball's surface voxels within
#: 90 % of the view's height: a disc about 85 % of a 400 px high canvas across, some 40 % of
#: a 600x400 canvas (measured 41 %; the test prints it).
MIN_COVER = 0.25

CELLS = [
    "import numpy as np\n"
    "from beamhub.kernels.view import VolumeViewer\n"
    "z, y, x = np.mgrid[:64, :64, :64]\n"
    "# a ball 16 voxels across, off-centre in a 64³ box that is otherwise empty\n"
    "ball = (((x - 40)**2 + (y - 24)**2 + (z - 30)**2) < 8**2).astype(np.float32)",
    "viewer = VolumeViewer(ball, cmap='viridis', height_3d=400, width_3d=600)\nviewer",
]


def _upload(lab, name: str, cells: list[str]) -> None:
    """Put a notebook into the Lab's root folder through Jupyter's contents API."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    body = json.dumps({"type": "notebook", "format": "json", "content": nb}).encode()
    request = urllib.request.Request(
        f"{lab['url']}/api/contents/{name}?token={lab['token']}",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status in (200, 201)


def _background(shot: np.ndarray) -> np.ndarray:
    """Pixels of k3d's white clear colour (anti-aliasing at the edge counts as object)."""
    return np.all(shot >= 245, axis=2)


def test_3d_view_frames_the_object_on_first_render_browser_screenshot(lab, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    _upload(lab, "framing.ipynb", CELLS)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.set_default_timeout(90_000)
    try:
        # ?reset: a fresh workspace, not the tabs an earlier Lab left open
        page.goto(f"{lab['url']}/lab/tree/framing.ipynb?reset&token={lab['token']}")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=120_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=120_000)
        page.locator(".jp-Notebook .jp-Cell .jp-InputArea-prompt").first.click()
        for _ in CELLS:
            page.keyboard.press("Shift+Enter")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-Notebook .jp-InputArea-prompt')]"
            ".some(p => p.textContent.includes('[2]'))",
            timeout=120_000,
        )
        canvas = page.locator(".beamhub-volume-viewer canvas").first
        canvas.wait_for(state="visible", timeout=60_000)
        canvas.scroll_into_view_if_needed()
        # wait until the drawing settles: two screenshots alike, with something on them
        deadline = time.monotonic() + 60
        previous = None
        while True:
            shot = _pixels(canvas.screenshot())
            settled = previous is not None and previous.shape == shot.shape and np.array_equal(previous, shot)
            if (settled and (~_background(shot)).mean() > 0.01) or time.monotonic() > deadline:
                break
            previous = shot
            time.sleep(0.5)
        canvas.screenshot(path=str(ARTIFACTS / "viewer-3d-framing.png"))
    finally:
        page.screenshot(path=str(ARTIFACTS / "viewer-3d-framing-page.png"), full_page=True)
        page.close()

    height, width = shot.shape[:2]
    assert height > 300 and width > 450, f"the 3-D canvas is {width}x{height} CSS px, not about 600x400"
    background = _background(shot)
    # the axes helper sits in the bottom-right corner: leave a corner box out
    background[int(0.8 * height) :, int(0.85 * width) :] = True
    cover = float((~background).mean())
    assert cover >= MIN_COVER, f"the object covers {100 * cover:.1f} % of the canvas, want >= {100 * MIN_COVER:.0f} %"
    rows, cols = np.nonzero(~background)
    # framed, not cropped: a margin of background all around the object
    assert rows.min() > 0 and cols.min() > 0 and rows.max() < height - 1 and cols.max() < width - 1, (
        "the object touches the canvas edge"
    )
    print(
        f"3-D framing: object covers {100 * cover:.1f} % of a {width}x{height} canvas, "
        f"spans {100 * (rows.max() - rows.min()) / height:.0f} % of its height"
    )
