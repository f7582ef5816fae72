"""Every notebook in notebooks/ runs end to end with no error (nbclient, a real kernel).

A notebook whose kernel module has not landed yet is skipped with a reason naming
that module, so the test runs as soon as the module arrives.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

# modules a notebook needs beyond the base install
NEEDS = {
    "tomography.ipynb": ["beamhub.kernels.tomo", "beamhub.kernels.sim.tomo"],
    "phasing.ipynb": ["beamhub.kernels.phasing", "beamhub.kernels.sim.cdi"],
    "spi_emc.ipynb": ["beamhub.kernels.emc", "beamhub.kernels.sim.spi", "beamhub.kernels.phasing"],
}


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    for module in NEEDS.get(path.name, []):
        if not _present(module):
            pytest.skip(f"{module} is not in this checkout yet")
    nb = nbformat.read(path, as_version=4)
    # run where a user would, in a scratch folder; the kernel inherits this environment
    monkeypatch.setenv("BEAMHUB_BACKEND", os.environ.get("BEAMHUB_BACKEND", "numpy"))
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    # the widgets were built: each notebook that shows a viewer has its widget state saved
    if "VolumeViewer(" in "".join(c.source for c in nb.cells):
        views = [
            out
            for cell in nb.cells
            for out in cell.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
        ]
        assert views, f"{path.name}: no widget was displayed"
