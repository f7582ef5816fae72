"""Issue 14 item 8: every bad input to a kernel command is one line on stderr, exit 2, no file left.

Each case builds a small bad input, runs ``beamhub ...`` in-process (as the
console script does) and checks the single stderr line for its key words.
A killed writer's ``.part`` file is removed by the next write to the same target.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from beamhub import cli
from beamhub.kernels.io import atomic_output

GOOD_JOB = {
    "srand": 1,
    "data": "intens.npy",
    "data_dim": "2d",
    "support_size": 4,
    "algo": [{"name": "er", "number_of_iterations": 2}],
    "out_file": "out.h5",
}


def one_line_error(capsys, argv, *words):
    """Run ``beamhub argv``; assert exit 2 and a single stderr line holding ``words``."""
    status = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def write_job(folder: Path, **change) -> Path:
    path = folder / "job.json"
    path.write_text(json.dumps({**GOOD_JOB, **change}))
    return path


def damaged_h5(path: Path) -> Path:
    """An HDF5 file whose object headers are overwritten (the signature stays readable)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.ones((32, 32)), chunks=(8, 8), compression="gzip")
        f.create_dataset("/exchange/data", data=np.ones((3, 4, 8)))
    raw = bytearray(path.read_bytes())
    for i in range(800, 1400):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    "value, words",
    [
        (np.nan, ["NaN or infinite", "'data'"]),
        (np.inf, ["NaN or infinite", "'data'"]),
        (0.0, ["zero at every known pixel"]),
    ],
)
def test_phase_refuses_nan_inf_and_zero_data(tmp_path, capsys, value, words):
    data = np.zeros((16, 16)) if value == 0.0 else np.ones((16, 16))
    data[3, 3] = value
    np.save(tmp_path / "intens.npy", data)
    one_line_error(capsys, ["phase", write_job(tmp_path)], *words)
    assert "out.h5" not in files(tmp_path)


def test_phase_refuses_a_job_file_that_is_not_utf8(tmp_path, capsys):
    (tmp_path / "job.json").write_bytes(b'{"data": "\xff\xfe"}')
    one_line_error(capsys, ["phase", tmp_path / "job.json"], "not UTF-8")


def test_phase_refuses_an_out_file_that_is_a_folder_before_computing(tmp_path, capsys):
    np.save(tmp_path / "intens.npy", np.ones((16, 16)))
    (tmp_path / "out.h5").mkdir()
    one_line_error(capsys, ["phase", write_job(tmp_path)], "'out_file'", "is a folder")
    assert not any(name.endswith(".part") for name in files(tmp_path))


def test_phase_names_a_damaged_hdf5_input(tmp_path, capsys):
    damaged_h5(tmp_path / "bad.h5")
    one_line_error(capsys, ["phase", write_job(tmp_path, data="bad.h5:/x")], "bad.h5", "not a readable HDF5 file")
    assert "out.h5" not in files(tmp_path)


def _scan(path: Path, n_angles: int) -> Path:
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = np.ones((n_angles, 4, 8))
        f["/exchange/data_white"] = np.ones((1, 4, 8))
        f["/exchange/data_dark"] = np.zeros((1, 4, 8))
        f["/exchange/theta"] = np.linspace(0, np.pi, n_angles)
    return path


def test_tomo_refuses_zero_projections(tmp_path, capsys):
    scan = _scan(tmp_path / "scan.h5", 0)
    one_line_error(capsys, ["tomo", scan, "--out", tmp_path / "rec.h5"], "no projections")
    assert files(tmp_path) == {"scan.h5"}


def test_tomo_refuses_an_out_path_that_is_a_folder(tmp_path, capsys):
    scan = _scan(tmp_path / "scan.h5", 6)
    (tmp_path / "rec.h5").mkdir()
    one_line_error(capsys, ["tomo", scan, "--out", tmp_path / "rec.h5"], "--out", "is a folder")
    assert files(tmp_path) == {"scan.h5", "rec.h5"}


def test_tomo_names_a_damaged_scan(tmp_path, capsys):
    scan = damaged_h5(tmp_path / "scan.h5")
    one_line_error(capsys, ["tomo", scan, "--out", tmp_path / "rec.h5"], "scan.h5")
    assert files(tmp_path) == {"scan.h5"}


def test_emc_refuses_a_config_that_is_not_utf8(tmp_path, capsys):
    (tmp_path / "config.ini").write_bytes(b"[emc]\nnum_div = \xff\n")
    one_line_error(capsys, ["emc", tmp_path / "config.ini", "-n", "1"], "not UTF-8")


def test_simulate_refuses_a_folder_that_is_a_file(tmp_path, capsys):
    (tmp_path / "demo").write_text("x")
    one_line_error(capsys, ["simulate", "spi", tmp_path / "demo", "--num-data", "5"], "is a file")


def test_the_shell_sees_one_line_and_status_2(tmp_path):
    """The installed console script, not just cli.main: no traceback reaches the terminal."""
    (tmp_path / "job.json").write_bytes(b"\xff")
    run = subprocess.run(
        [sys.executable, "-m", "beamhub", "phase", str(tmp_path / "job.json")], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and "not UTF-8" in run.stderr


KILLED_WRITER = textwrap.dedent("""\
    import os, signal, sys
    from beamhub.kernels.io import atomic_output
    with atomic_output(sys.argv[1]) as tmp:
        tmp.write_text("half a file")
        os.kill(os.getpid(), signal.SIGKILL)
""")

LIVE_WRITER = textwrap.dedent("""\
    import sys
    from beamhub.kernels.io import atomic_output
    with atomic_output(sys.argv[1]) as tmp:
        tmp.write_text("in progress")
        print("writing", flush=True)
        sys.stdin.readline()
""")


def test_a_killed_writers_part_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "out.h5"
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], check=False)
    assert [p.suffix for p in tmp_path.iterdir()] == [".part"]
    with atomic_output(target) as tmp:
        tmp.write_text("complete")
    assert files(tmp_path) == {"out.h5"} and target.read_text() == "complete"


def test_a_live_writers_part_file_is_left_alone(tmp_path):
    target = tmp_path / "out.h5"
    writer = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        with atomic_output(tmp_path / "out.h5") as tmp:
            tmp.write_text("other")
        assert sum(p.suffix == ".part" for p in tmp_path.iterdir()) == 1
    finally:
        writer.communicate("\n", timeout=60)
    assert writer.returncode == 0 and files(tmp_path) == {"out.h5"}
