"""The VolumeViewer as a person sees it: JupyterLab in headless Chromium, a slider moved, a 3-D canvas.

A plain ``jupyter lab`` (not the platform) serves a temporary folder holding one
notebook that shows a VolumeViewer of a simple phantom.  Playwright opens it,
runs all cells, moves the z slider with the keyboard, and compares screenshots
of the slice before and after; the k3d canvas must draw the isosurface
(pixels that are neither the page background nor blank).
"""

from __future__ import annotations

import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pytest

pytestmark = [pytest.mark.browser]

ARTIFACTS = Path(os.environ.get("BEAMHUB_TEST_ARTIFACTS", "test-artifacts"))


VIEWER_CELLS = [
    "import numpy as np\n"
    "from beamhub.kernels.view import VolumeViewer\n"
    "z, y, x = np.mgrid[-1:1:48j, -1:1:40j, -1:1:40j]\n"
    "# a ball with a smaller, denser ball off-centre: every slice through it differs\n"
    "vol = (x**2 + y**2 + z**2 < 0.6).astype(np.float32)\n"
    "vol += ((x - 0.3)**2 + (y + 0.2)**2 + (z - 0.2)**2 < 0.05)",
    "viewer = VolumeViewer(vol, cmap='viridis', max_3d=32, height_3d=320)\nviewer",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"jupyter lab did not answer {url} in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A plain JupyterLab on a free loopback port, serving a folder with viewer.ipynb."""
    root = tmp_path_factory.mktemp("lab-root")
    runtime = tmp_path_factory.mktemp("lab-runtime")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in VIEWER_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "viewer.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), PYTHONUNBUFFERED="1", BEAMHUB_BACKEND="numpy")
    log = root.parent / "jupyter-lab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/status?token={token}", 90, proc, log)
        yield {"url": base, "token": token, "log": log}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _wait_for_change(locator, before: np.ndarray, timeout: float = 30.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        after = _pixels(locator.screenshot())
        if after.shape != before.shape or np.abs(after - before).sum() > 0:
            return after
        time.sleep(0.25)
    return before


def test_viewer_slices_follow_the_slider_and_3d_view_draws(lab, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.set_default_timeout(90_000)
    try:
        page.goto(f"{lab['url']}/lab/tree/viewer.ipynb?token={lab['token']}")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        # the kernel is ready once the status bar says so (the toolbar indicator says
        # "idle" before the kernel's websocket is up, and cells run then are dropped)
        page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=120_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=120_000)
        # run the cells one after the other with Shift+Enter, as a person would
        page.locator(".jp-Notebook .jp-Cell .jp-InputArea-prompt").first.click()
        for _ in VIEWER_CELLS:
            page.keyboard.press("Shift+Enter")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-Notebook .jp-InputArea-prompt')]"
            ".some(p => p.textContent.includes('[2]'))",
            timeout=120_000,
        )

        z_image = page.locator("img.beamhub-slice-z")
        z_image.wait_for(state="visible", timeout=60_000)
        page.wait_for_function(
            "() => { const i = document.querySelector('img.beamhub-slice-z');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        page.locator(".beamhub-volume-viewer").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "viewer-before.png"), full_page=True)
        before = _pixels(z_image.screenshot(path=str(ARTIFACTS / "viewer-slice-before.png")))
        assert before.std() > 5, "the z slice rendered blank"
        y_image = page.locator("img.beamhub-slice-y")
        y_before = _pixels(y_image.screenshot())

        # move the z slider: focus its handle and step it down with the keyboard
        handle = page.locator(".beamhub-volume-viewer .widget-slider").first.locator(".noUi-handle")
        handle.focus()
        for _ in range(10):
            handle.press("ArrowLeft")
        readout = page.locator(".beamhub-volume-viewer .widget-slider").first.locator(".widget-readout")
        page.wait_for_function("(el) => el.textContent.trim() === '14'", arg=readout.element_handle())

        after = _wait_for_change(z_image, before)
        page.screenshot(path=str(ARTIFACTS / "viewer-after.png"), full_page=True)
        z_image.screenshot(path=str(ARTIFACTS / "viewer-slice-after.png"))
        assert after.shape == before.shape
        changed = np.abs(after - before).sum(axis=2) > 30
        assert changed.mean() > 0.02, "the z slice did not change when its slider moved"
        # the crosshair on the y slice moved with it
        assert np.abs(_pixels(y_image.screenshot()) - y_before).sum() > 0
        assert "z=14" in page.locator(".beamhub-viewer-info").inner_text()

        # the 3-D view: k3d's WebGL canvas shows the isosurface
        canvas = page.locator(".beamhub-volume-viewer canvas").first
        canvas.scroll_into_view_if_needed()
        deadline = time.monotonic() + 60
        while True:
            shot = _pixels(canvas.screenshot(path=str(ARTIFACTS / "viewer-3d.png")))
            # the isosurface is gold (0xD9A21B), lit: many shades of a warm colour
            r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
            surface = (r > 90) & (r - b > 60) & (g - b > 20)
            shades = len(np.unique(shot[surface], axis=0))
            if (surface.sum() > 500 and shades > 20) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert shot.shape[0] > 100 and shot.shape[1] > 100
        assert surface.sum() > 500 and shades > 20, (
            f"the 3-D canvas shows no isosurface ({surface.sum()} surface pixels, {shades} shades)"
        )
    finally:
        page.screenshot(path=str(ARTIFACTS / "viewer-final.png"), full_page=True)
        page.close()
