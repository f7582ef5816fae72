"""What `beamhub tomo` and `beamhub phase` tell a user reaches their log without a terminal.

A batch job's output is a file, not a terminal: the facts a user needs (the rotation axis found,
the seed and summary of a phasing run) must be there; only the progress bar follows the terminal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import h5py

from beamhub.kernels import sim
from beamhub.kernels.io.dxchange import write_dx


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    """`beamhub ARGS` with stdout and stderr to pipes (not terminals), as under the jobs service."""
    return subprocess.run(
        [sys.executable, "-m", "beamhub", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BEAMHUB_BACKEND": "numpy"},
    )


def test_tomo_reports_the_axis_it_found_without_a_terminal(tmp_path):
    scan = sim.simulate_scan(n=64, rows=4, n_angles=90, center_offset=2.2, seed=11)
    write_dx(tmp_path / "scan.h5", scan.tomo, scan.flat, scan.dark, scan.theta)
    out = _run("tomo", "scan.h5", "--out", "rec.h5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    found = re.search(r"rotation axis at column ([\d.]+) \(auto, found on row 2 of 4\)", out.stderr)
    assert found, out.stderr
    with h5py.File(tmp_path / "rec.h5") as f:  # the axis reported is the one used
        assert abs(float(found.group(1)) - f["/process/tomo"].attrs["center"]) < 0.01
    assert "wrote 4 slices of 64x64" in out.stderr
    assert "\r" not in out.stderr and "it/s" not in out.stderr  # no progress bar in a log

    quiet = _run("tomo", "scan.h5", "--out", "rec2.h5", "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_phase_summary_with_its_seed_reaches_the_log(tmp_path):
    pattern = sim.simulate_cdi(sim.random_object((8, 8, 8), seed=1), oversampling=3, photons=1e10, beamstop=1.0, seed=2)
    pattern.intensity.tofile(tmp_path / "intens.bin")
    job = {
        "data": "intens.bin",
        "data_dim": "3d",
        "number_of_outputs_images": 1,
        "number_of_outputs_scores": 2,
        "support_size": 10,
        "out_file": "out.h5",
        "algo": [{"name": "hio", "number_of_iterations": 20}, {"name": "er", "number_of_iterations": 10}],
    }
    (tmp_path / "job.json").write_text(json.dumps(job))  # no "srand": a random seed, which must be told
    out = _run("phase", "job.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    said = re.search(
        r"phasing \S+intens\.bin 24\^3: 2 start\(s\) x 30 iterations \(hio 20, er 10\), "
        r"static support 10 px, seed (\d+), on numpy",
        out.stdout,
    )
    assert said, out.stdout
    with h5py.File(tmp_path / "out.h5") as f:  # the seed told is the one recorded: the run can be redone
        assert json.loads(f.attrs["job"])["srand"] == int(said.group(1))
    assert re.search(r"wrote \S+out\.h5 in [\d.]+ s", out.stdout) and "best Fourier error:" in out.stdout
    assert "\r" not in out.stderr and "it/s" not in out.stderr
