"""The kernel documentation is where the user is: in a fresh workspace beside the notebooks.

A new user's first start (LocalBeamSpawner.prepare_workspace, the embedded platform's path) copies
the example notebooks and ``docs/`` (hub/local.py KERNEL_DOCS) into the workspace; every relative
link in a notebook's markdown (and in the copied pages) must open a file that exists there, as
JupyterLab resolves it: relative to the notebook's own folder.  The session images copy the same
pages beside their notebooks (images/*/Dockerfile), which is checked against the same list.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse

import nbformat
import pytest

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.local import DOCS_MARKER, KERNEL_DOCS, LocalBeamSpawner

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ALICE = Identity("alice", 2001, 2001, (3001,), ("tomo", "spi"))
# a markdown link or image: [text](target) / ![alt](target)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# the page each worked example is about
EXPECTED = {
    "tomography.ipynb": "docs/tomo.md",
    "phasing.ipynb": "docs/phasing.md",
    "spi_emc.ipynb": "docs/emc.md",
    "00-welcome.ipynb": "docs/view.md",
}


def relative_links(markdown: str) -> list[str]:
    """Targets of the relative links in ``markdown`` (no scheme, no pure #anchors), unquoted."""
    out = []
    for target in LINK.findall(markdown):
        parsed = urlparse(target)
        if parsed.scheme or parsed.netloc or not parsed.path:
            continue
        out.append(unquote(parsed.path))
    return out


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A user's workspace after the first start, with the checkout's notebooks and docs."""
    spawner = LocalBeamSpawner(workspace_root=str(tmp_path / "users"), data_root=str(tmp_path))
    assert Path(spawner.notebooks_dir) == REPO / "notebooks" and Path(spawner.docs_dir) == REPO / "docs"
    spawner.user = SimpleNamespace(name=ALICE.username, admin=False, groups=[])
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, name="")
    spawner.identity = ALICE
    spawner.apply_environment(load_catalog().get("tomo"))
    assert spawner.prepare_workspace() == len(NOTEBOOKS)
    return tmp_path / "users" / "alice"


def test_a_fresh_workspace_has_the_kernel_docs_beside_the_notebooks(workspace):
    for name in KERNEL_DOCS:
        copied = workspace / "docs" / name
        assert copied.is_file(), f"docs/{name} is missing from a new workspace"
        assert copied.read_bytes() == (REPO / "docs" / name).read_bytes()
    assert (workspace / DOCS_MARKER).exists()
    # nothing the user should not get: the design notes and the operators' pages stay out
    assert not (workspace / "docs" / "DESIGN.md").exists() and not (workspace / "docs" / "scheduler.md").exists()


def test_each_notebooks_doc_links_resolve_in_the_workspace(workspace):
    for path in NOTEBOOKS:
        nb = nbformat.read(workspace / path.name, as_version=4)
        links = [t for cell in nb.cells if cell.cell_type == "markdown" for t in relative_links(cell.source)]
        assert EXPECTED[path.name] in links, f"{path.name} does not link {EXPECTED[path.name]}"
        for target in links:
            assert (workspace / target).is_file(), f"{path.name}: link {target} opens nothing in the workspace"


def test_the_copied_pages_links_resolve_too(workspace):
    """A page's own links (its figures) open from the copy; links out to the repository would not."""
    for name in KERNEL_DOCS:
        if not name.endswith(".md"):
            continue
        page = workspace / "docs" / name
        for target in relative_links(page.read_text()):
            assert (page.parent / target).is_file(), f"docs/{name}: link {target} opens nothing in the workspace"


def test_the_docs_are_copied_once_and_a_deleted_page_stays_deleted(workspace, tmp_path):
    (workspace / "docs" / "tomo.md").unlink()
    spawner = LocalBeamSpawner(workspace_root=str(tmp_path / "users"), data_root=str(tmp_path))
    spawner.user = SimpleNamespace(name="alice", admin=False, groups=[])
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, name="")
    spawner.identity = ALICE
    spawner.apply_environment(load_catalog().get("tomo"))
    assert spawner.prepare_workspace() == 0
    assert not (workspace / "docs" / "tomo.md").exists()


def test_a_workspace_from_before_the_docs_gets_them_on_its_next_start(workspace, tmp_path):
    import shutil

    shutil.rmtree(workspace / "docs")
    (workspace / DOCS_MARKER).unlink()
    spawner = LocalBeamSpawner(workspace_root=str(tmp_path / "users"), data_root=str(tmp_path))
    spawner.user = SimpleNamespace(name="alice", admin=False, groups=[])
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, name="")
    spawner.identity = ALICE
    spawner.apply_environment(load_catalog().get("tomo"))
    assert spawner.prepare_workspace() == 0  # the notebooks are not copied again
    assert all((workspace / "docs" / name).is_file() for name in KERNEL_DOCS)


@pytest.mark.parametrize("image", ["base", "gpu", "spi", "tomo"])
def test_session_images_copy_the_same_docs_beside_their_notebooks(image):
    """Each session image's runtime is the shared ``session-base`` stage of images/common, which puts
    KERNEL_DOCS under /opt/beamhub-notebooks/docs/ and lets them into its build context
    (Dockerfile.dockerignore)."""
    dockerfile = (REPO / "images" / image / "Dockerfile").read_text()
    assert "ARG SESSION_BASE=beamhub/session-base:" in dockerfile
    assert re.search(r"^FROM \$\{SESSION_BASE\}", dockerfile, re.M), f"{image} is not built on session-base"
    common = (REPO / "images" / "common" / "Dockerfile").read_text()
    session_stage = common[common.index(" AS session-base") :]
    copied = set()
    for sources, dest in re.findall(r"^COPY ((?:docs/\S+ )+)(/opt/beamhub-notebooks/docs/\S*)$", session_stage, re.M):
        for source in sources.split():
            relative = source.removeprefix("docs/")
            assert dest.rstrip("/").endswith(("docs", f"docs/{Path(relative).parent}")), (source, dest)
            copied.add(relative)
    assert copied == set(KERNEL_DOCS)
    ignore = (REPO / "images" / "common" / "Dockerfile.dockerignore").read_text().split()
    assert "!docs/*.md" in ignore and "!docs/figures/*.png" in ignore
