"""``beamhub simulate tomo`` writes a Data Exchange scan that ``beamhub tomo`` reconstructs."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from beamhub.errors import UsageError
from beamhub.kernels.commands import simulate, tomo
from beamhub.kernels.io.dxchange import read_dx

N = 64


def _simulate(*argv) -> int:
    return simulate.main(["tomo", *map(str, argv)], "beamhub simulate")


def test_folder_gets_scan_and_truth_that_beamhub_tomo_reconstructs(tmp_path, capsys):
    folder = tmp_path / "demo"
    assert _simulate(folder, "--size", N, "--rows", 4, "--angles", 90, "--center-offset", 2.5, "--seed", 3) == 0
    scan_path = folder / "scan.h5"
    assert capsys.readouterr().out.strip() == str(scan_path)

    tomo_, flat, dark, theta = read_dx(scan_path)
    assert tomo_.shape == (90, 4, N) and tomo_.dtype == np.uint16
    assert flat.shape == (10, 4, N) and dark.shape == (10, 4, N)
    assert theta.min() >= 0 and theta.max() < np.pi  # radians, half a turn
    assert flat.mean() > tomo_.mean() > dark.mean() > 0  # the object absorbs; darks have an offset
    assert np.std(flat[:, 1, N // 2].astype(float)) > 10  # Poisson noise on the flats
    with h5py.File(scan_path) as f:
        assert f["/exchange/theta"].attrs["units"] == "rad"
    with h5py.File(folder / "scan-truth.h5") as f:
        truth = f["/exchange/data"][()]
        true_center = float(f.attrs["center"])
    assert true_center == pytest.approx((N - 1) / 2 + 2.5)  # off the detector middle

    out = tmp_path / "recon.h5"
    assert tomo.main([str(scan_path), "--out", str(out), "--center", "auto", "-q"], "beamhub tomo") == 0
    with h5py.File(out) as f:
        rec = f["/exchange/data"][()]
        found = float(f["/process/tomo"].attrs["center"])
    assert abs(found - true_center) < 0.5
    x = np.arange(N) - (N - 1) / 2
    inside = (x[None] ** 2 + x[:, None] ** 2) < (0.9 * N / 2) ** 2
    err = np.sqrt(np.mean((rec - truth)[:, inside] ** 2) / np.mean(truth[:, inside] ** 2))
    assert err < 0.25


def test_file_name_and_no_truth(tmp_path):
    path = tmp_path / "sub" / "example.h5"
    assert _simulate(path, "--size", 32, "--rows", 1, "--angles", 20, "--no-truth", "--no-noise", "--seed", 1) == 0
    assert path.is_file() and not (tmp_path / "sub" / "example-truth.h5").exists()
    tomo_, _, dark, _ = read_dx(path)
    assert tomo_.shape == (20, 1, 32) and np.all(dark == 100)  # no noise: the dark level exactly


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--size", "4"], "--size must be at least 8"),
        (["--center-offset", "40"], "--center-offset 40"),
        (["--photons", "0"], "--photons must be positive"),
        (["--stripes", "200"], "--stripes must be between 0 and --size"),
    ],
)
def test_bad_options_say_what_to_change(tmp_path, argv, words):
    with pytest.raises(UsageError, match=words):
        _simulate(tmp_path / "x.h5", *argv)


def test_listed_among_the_kinds_by_the_command_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "beamhub", "simulate", "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and "tomo" in run.stdout and "Data Exchange" in run.stdout
