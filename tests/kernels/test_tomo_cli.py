"""``beamhub tomo`` end to end on a small simulated scan."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from beamhub.errors import UsageError
from beamhub.kernels import sim
from beamhub.kernels.commands.tomo import main
from beamhub.kernels.io.dxchange import write_dx

N = 64


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    scan = sim.simulate_scan(n=N, rows=5, n_angles=90, center_offset=2.2, seed=11)
    path = tmp_path_factory.mktemp("tomo") / "scan.h5"
    write_dx(path, scan.tomo, scan.flat, scan.dark, scan.theta)
    return path, scan


def _err(rec, truth):
    x = np.arange(N) - (N - 1) / 2
    m = (x[None] ** 2 + x[:, None] ** 2) < (0.9 * N / 2) ** 2
    return np.sqrt(np.mean((rec - truth)[:, m] ** 2) / np.mean(truth[:, m] ** 2))


def test_round_trip_with_auto_center(tmp_path, scan_file):
    path, scan = scan_file
    out = tmp_path / "rec.h5"
    assert main([str(path), "--out", str(out), "--rows", "1:4", "--chunk-rows", "2", "-q"], "beamhub tomo") == 0
    with h5py.File(out) as f:
        rec = f["/exchange/data"][()]
        attrs = dict(f["/process/tomo"].attrs)
    assert rec.shape == (3, N, N) and rec.dtype == np.float32
    assert abs(attrs["center"] - scan.center) < 0.5
    assert attrs["algorithm"] == "gridrec" and json.loads(attrs["rows"]) == [1, 4]
    assert _err(rec, scan.phantom[1:4]) < 0.2


@pytest.mark.parametrize("algorithm", ["fbp", "sirt"])
def test_other_algorithms_and_options(tmp_path, scan_file, algorithm):
    path, scan = scan_file
    out = tmp_path / "rec.h5"
    argv = [
        str(path),
        "--out",
        str(out),
        "--rows",
        "2:3",
        "--algorithm",
        algorithm,
        "--center",
        str(scan.center),
        "--stripe",
        "sorting",
        "--circ-mask",
        "-q",
        "--num-iter",
        "60",
    ]
    assert main(argv, "beamhub tomo") == 0
    with h5py.File(out) as f:
        rec = f["/exchange/data"][()]
        assert f["/process/tomo"].attrs["center_method"] == "given"
    assert rec[0, 0, 0] == 0  # outside the circle
    assert _err(rec, scan.phantom[2:3]) < 0.3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{deg}"], "looks like degrees"),
        (["{tmp}/absent.h5"], "no such file"),
        (["{scan}", "--rows", "9:12"], "selects no rows"),
        (["{scan}", "--rows", "a:b"], "must be integers"),
        (["{scan}", "--center", "left"], "auto, vo, entropy or a number"),
        (["{scan}", "--center", "500"], "outside the detector"),
    ],
)
def test_bad_inputs_are_explained(tmp_path, scan_file, argv, message):
    path, scan = scan_file
    deg = tmp_path / "deg.h5"
    write_dx(deg, scan.tomo, scan.flat, scan.dark, np.rad2deg(scan.theta), theta_units="")
    argv = [a.format(deg=deg, tmp=tmp_path, scan=path) for a in argv]
    with pytest.raises(UsageError, match=message):
        main([*argv, "--out", str(tmp_path / "o.h5")], "beamhub tomo")
    assert not (tmp_path / "o.h5").exists()


def test_bad_input_exits_2_with_one_line_from_the_shell(tmp_path, scan_file):
    path, scan = scan_file
    deg = tmp_path / "deg.h5"
    write_dx(deg, scan.tomo, scan.flat, scan.dark, np.rad2deg(scan.theta), theta_units="")
    proc = subprocess.run(
        [sys.executable, "-m", "beamhub.cli", "tomo", str(deg), "--out", str(tmp_path / "o.h5")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("beamhub tomo: error:") and "looks like degrees" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.h5").exists()


def test_degrees_flag_accepts_degrees(tmp_path, scan_file):
    path, scan = scan_file
    deg = tmp_path / "deg.h5"
    write_dx(deg, scan.tomo, scan.flat, scan.dark, np.rad2deg(scan.theta), theta_units="")
    out = tmp_path / "rec.h5"
    assert main([str(deg), "--out", str(out), "--degrees", "--rows", "2:3", "-q"], "t") == 0


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"], "beamhub tomo")
    text = capsys.readouterr().out
    assert "examples:" in text and "--rows" in text


def test_usage_error_type(scan_file):
    with pytest.raises(UsageError):
        main([str(scan_file[0]), "--out", "x.h5", "--chunk-rows", "0"], "beamhub tomo")
