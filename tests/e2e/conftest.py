"""Debian's Chromium driven by Playwright, shared by every browser test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("BEAMHUB_TEST_ARTIFACTS", "test-artifacts"))

# Flags a sandboxed, offline CI machine needs (no setuid sandbox as root, no calls home); with
# --disable-gpu, WebGL comes from SwiftShader (software GL), which the 3-D viewer needs: name it
# rather than rely on a fallback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module: Playwright's sync API runs an event loop in this thread while
    it lives, so it must be gone before asyncio tests in other modules run."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (make test installs it as root)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
