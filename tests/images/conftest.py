"""The images built for real with `images/build.py` (a Docker engine started if none runs).

The whole module fails, with the build's own reason, when no engine can start or a build
fails: nothing here skips silently.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("beamhub_images_build", REPO / "images" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.images)


@pytest.fixture(scope="session")
def engine():
    """A Docker engine with every image built (cached builds take seconds); stopped if we started it."""
    docker = build.Engine(build.docker_cli())
    try:
        docker.start()
    except build.BuildError as exc:
        pytest.fail(f"no Docker engine: {exc}")
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "images" / "build.py")], capture_output=True, text=True, cwd=REPO
        )
        assert done.returncode == 0, f"make images failed:\n{done.stdout}\n{done.stderr}"
        docker.build_output = done.stdout
        yield docker
    finally:
        docker.stop()
