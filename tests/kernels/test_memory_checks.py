"""Issue 14 item 7: phase, simulate and tomo estimate their memory first and refuse what cannot fit.

The budget is patched down (``memory.available_bytes``) so small inputs stand for
large ones; the refusal is one line naming the option and both figures, and no
output is written.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from beamhub import cli
from beamhub.kernels import memory
from beamhub.kernels.commands import phase as phase_command

MB = 10**6


@pytest.fixture
def budget(monkeypatch):
    """Set the memory this process may use, in bytes."""

    def set_budget(n):
        monkeypatch.setattr(memory, "available_bytes", lambda **_: n)

    return set_budget


def refused(capsys, argv, *words):
    status = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1, err
    assert "needs ~" in err and "are available" in err, err
    for word in words:
        assert word in err, err
    return err


def test_meminfo_and_cgroup_v2_limit_the_budget(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\nMemAvailable:    2000 kB\n")
    (tmp_path / "cgroup").write_text("0::/job\n")
    (tmp_path / "fs" / "job").mkdir(parents=True)
    (tmp_path / "fs" / "job" / "memory.max").write_text("1500000\n")
    (tmp_path / "fs" / "job" / "memory.current").write_text("500000\n")
    args = dict(meminfo=tmp_path / "meminfo", cgroup_root=tmp_path / "fs", proc_cgroup=tmp_path / "cgroup")
    assert memory.available_bytes(**args) == 1_000_000
    (tmp_path / "fs" / "job" / "memory.max").write_text("max\n")
    assert memory.available_bytes(**args) == 2000 * 1024


def test_cgroup_v1_limit_and_its_no_limit_value(tmp_path):
    (tmp_path / "meminfo").write_text("MemAvailable: 4000000 kB\n")
    (tmp_path / "cgroup").write_text("4:memory:/pod\n1:cpu:/\n")
    folder = tmp_path / "fs" / "memory" / "pod"
    folder.mkdir(parents=True)
    (folder / "memory.limit_in_bytes").write_text(str(3 * 2**30))
    (folder / "memory.usage_in_bytes").write_text(str(2**30))
    args = dict(meminfo=tmp_path / "meminfo", cgroup_root=tmp_path / "fs", proc_cgroup=tmp_path / "cgroup")
    assert memory.available_bytes(**args) == 2 * 2**30
    (folder / "memory.limit_in_bytes").write_text("9223372036854771712")
    assert memory.available_bytes(**args) == 4000000 * 1024


def test_unreadable_budget_skips_the_check(tmp_path):
    assert (
        memory.available_bytes(meminfo=tmp_path / "none", cgroup_root=tmp_path, proc_cgroup=tmp_path / "none") is None
    )
    memory.require(10, "x", available=100)  # fits: no refusal


def test_the_message_names_option_estimate_and_budget():
    with pytest.raises(memory.InsufficientMemory) as exc:
        memory.require(5.4e12, "number_of_outputs_images=5000 at 512^3", available=21 * 10**9)
    assert str(exc.value) == ("number_of_outputs_images=5000 at 512^3 needs ~5.4 TB, 21 GB are available; lower it")
    assert memory.shape_text((512, 512, 512)) == "512^3" and memory.shape_text((4, 6)) == "4x6"


def _phase_job(tmp_path, **change):
    np.save(tmp_path / "intens.npy", np.ones((32, 32)))
    job = {
        "srand": 1,
        "data": "intens.npy",
        "data_dim": "2d",
        "support_size": 4,
        "algo": [{"name": "er", "number_of_iterations": 2}],
        "out_file": "out.h5",
        **change,
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    return tmp_path / "job.json"


def test_phase_refuses_too_many_output_images(tmp_path, capsys, budget):
    budget(5 * MB)
    job = _phase_job(tmp_path, number_of_outputs_images=400, number_of_outputs_scores=400)
    refused(capsys, ["phase", job], "number_of_outputs_images=400 at 32^2", "5 MB are available")
    assert not (tmp_path / "out.h5").exists()


def test_phase_check_refuses_too_many_starts_for_the_error_table(tmp_path, capsys, budget):
    budget(5 * MB)
    job = _phase_job(tmp_path, number_of_outputs_scores=10**6)
    refused(capsys, ["phase", job, "--check"], "number_of_outputs_scores=1000000")


def test_phase_refuses_a_volume_that_does_not_fit(tmp_path, capsys, budget):
    budget(50_000)
    refused(capsys, ["phase", _phase_job(tmp_path)], "'data' of 32^2")


def test_phase_real_budget_refuses_the_issues_example():
    """No patching: 5000 images of 512^3 do not fit on any machine this runs on."""
    job = phase_command.parse_job(
        {
            "data": "x.bin",
            "data_dim": "3d",
            "support_size": 30,
            "algo": [{"name": "hio", "number_of_iterations": 10}],
            "out_file": "o.h5",
            "number_of_outputs_images": 5000,
            "number_of_outputs_scores": 5000,
        }
    )
    with pytest.raises(memory.InsufficientMemory, match=r"number_of_outputs_images=5000 at 512\^3 needs ~\d+ TB"):
        phase_command.check_memory(job, (512, 512, 512))


def test_phase_within_budget_runs(tmp_path, capsys):
    assert cli.main(["phase", str(_phase_job(tmp_path)), "--check"]) == 0


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--detsize", "2000", "--num-data", "1"], ["--detsize=2000"]),
        (["--detsize", "25", "--num-data", "100000"], ["--num-data=100000", "25x25"]),
        (["--detsize", "25", "--num-data", "10", "--num-div", "100"], ["--num-div=100", "orientations"]),
    ],
)
def test_simulate_refuses_sizes_that_do_not_fit(tmp_path, capsys, budget, argv, words):
    budget(100 * MB)
    refused(capsys, ["simulate", "spi", tmp_path / "demo", *argv], *words)
    assert not (tmp_path / "demo").exists()


def _scan(path, angles=30, cols=64):
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = np.ones((angles, 4, cols), dtype=np.float32)
        f["/exchange/data_white"] = np.ones((1, 4, cols), dtype=np.float32)
        f["/exchange/data_dark"] = np.zeros((1, 4, cols), dtype=np.float32)
        f["/exchange/theta"] = np.linspace(0, np.pi, angles)
    return path


def test_tomo_refuses_chunk_rows_that_do_not_fit_and_says_how_many_do(tmp_path, capsys, budget):
    scan = _scan(tmp_path / "scan.h5")
    budget(1_500_000)
    err = refused(
        capsys,
        ["tomo", scan, "--out", tmp_path / "rec.h5", "--center", "31.5"],
        "--chunk-rows=4 at 30 angles x 64 columns",
        "at most 2 fits",
    )
    assert not (tmp_path / "rec.h5").exists(), err


def test_tomo_refuses_an_algorithm_whose_operator_does_not_fit(tmp_path, capsys, budget):
    scan = _scan(tmp_path / "scan.h5")
    budget(100_000)
    refused(
        capsys,
        ["tomo", scan, "--out", tmp_path / "rec.h5", "--algorithm", "sirt"],
        "--algorithm sirt at 30 angles x 64 columns",
    )
    assert not (tmp_path / "rec.h5").exists()
