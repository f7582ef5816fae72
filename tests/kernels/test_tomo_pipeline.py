"""Slab streaming (``reconstruct_slabs``) and ``mpiexec -n 2 beamhub tomo`` against one rank."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from beamhub.kernels import sim
from beamhub.kernels import tomo as bt
from beamhub.kernels.io.dxchange import DataExchangeScan, ReconWriter, write_dx
from beamhub.kernels.tomo.gridrec import gridding_setup

BEAMHUB = str(Path(sys.executable).with_name("beamhub"))
N = 64


@pytest.fixture(scope="module")
def scan():
    return sim.simulate_scan(n=N, rows=10, n_angles=90, center_offset=1.5, stripe_columns=2, seed=5)


def test_slabs_match_one_recon_of_everything(scan):
    src = bt.ArrayScan(scan.tomo, scan.flat, scan.dark, scan.theta)
    rec = bt.reconstruct_slabs(src, scan.center, rows=(1, 9), slab_rows=3, stripe="sorting", progress=False)
    proj = bt.remove_stripe(bt.minus_log(bt.normalize(scan.tomo, scan.flat, scan.dark)))
    whole = bt.recon(proj[:, 1:9], scan.theta, center=scan.center)
    assert rec.shape == (8, N, N) and rec.dtype == np.float32
    # gridrec pairs rows into one complex FFT; a different pairing moves values by ~1e-4
    np.testing.assert_allclose(rec, whole, atol=2e-4 * float(np.abs(whole).max()))


class CountingScan(bt.ArrayScan):
    def __init__(self, *args):
        super().__init__(*args)
        self.largest = 0

    def read_rows(self, start, stop):
        self.largest = max(self.largest, stop - start)
        return super().read_rows(start, stop)


def test_reads_at_most_one_slab_and_checks_arguments(scan):
    src = CountingScan(scan.tomo, scan.flat, scan.dark, scan.theta)
    out = np.zeros((10, N, N), np.float32)
    assert bt.reconstruct_slabs(src, scan.center, out=out, slab_rows=4, progress=False) is out
    assert src.largest == 4 and np.abs(out[-1]).max() > 0
    with pytest.raises(ValueError, match="rows=\\(5, 5\\)"):
        bt.reconstruct_slabs(src, scan.center, rows=(5, 5), progress=False)
    with pytest.raises(ValueError, match="center has 3 values for 10 rows"):
        bt.reconstruct_slabs(src, [1.0, 2.0, 3.0], progress=False)


def test_streams_a_file_larger_than_the_memory_it_uses(tmp_path):
    """Scan + slices are 16 MB as float32; streaming 4 rows at a time peaks below a quarter of that."""
    n, rows, angles = 96, 192, 120
    theta = np.linspace(0, np.pi, angles, endpoint=False)
    rng = np.random.default_rng(0)
    tomo = rng.poisson(3000, (angles, rows, n)).astype(np.uint16)
    flat = np.full((4, rows, n), 3100, np.uint16)
    dark = np.full((2, rows, n), 100, np.uint16)
    write_dx(tmp_path / "scan.h5", tomo, flat, dark, theta)
    whole = 4 * (angles * rows * n + rows * n * n)
    gridding_setup(theta, n)  # the per-geometry cache is not per-scan memory
    with DataExchangeScan(tmp_path / "scan.h5") as src, ReconWriter(tmp_path / "rec.h5", (rows, n, n), {}) as out:
        tracemalloc.start()
        bt.reconstruct_slabs(src, (n - 1) / 2, out=out, slab_rows=4, progress=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < whole / 4, f"peak {peak / 1e6:.1f} MB for a {whole / 1e6:.1f} MB scan"
    with h5py.File(tmp_path / "rec.h5") as f:
        assert f["/exchange/data"].shape == (rows, n, n)


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="mpiexec (openmpi-bin) not installed")
def test_two_mpi_ranks_write_what_one_writes(scan, tmp_path):
    write_dx(tmp_path / "scan.h5", scan.tomo, scan.flat, scan.dark, scan.theta)
    env = dict(
        os.environ,
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        BEAMHUB_BACKEND="numpy",
    )
    common = ["tomo", str(tmp_path / "scan.h5"), "--chunk-rows", "3", "--stripe", "sorting", "-q"]
    subprocess.run([BEAMHUB, *common, "--out", str(tmp_path / "one.h5")], check=True, env=env, timeout=120)
    subprocess.run(
        [
            "mpiexec",
            "--allow-run-as-root",
            "--oversubscribe",
            "-n",
            "2",
            BEAMHUB,
            *common,
            "--out",
            str(tmp_path / "two.h5"),
        ],
        check=True,
        env=env,
        timeout=120,
    )
    with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "two.h5") as b:
        one, two = a["/exchange/data"][()], b["/exchange/data"][()]
        assert b["/process/tomo"].attrs["ranks"] == 2 and a["/process/tomo"].attrs["ranks"] == 1
        assert a["/process/tomo"].attrs["center"] == b["/process/tomo"].attrs["center"]
    assert one.shape == (10, N, N) and np.abs(one).max() > 0
    assert np.array_equal(one, two)
