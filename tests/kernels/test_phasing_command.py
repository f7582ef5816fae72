"""`beamhub phase JOB.json`: end to end, every configuration error, atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from beamhub import cli
from beamhub.kernels.phasing import aligned_error
from beamhub.kernels.phasing.job import JOB_KEYS
from beamhub.kernels.sim import random_object, simulate_cdi


@pytest.fixture(scope="module")
def pattern():
    return simulate_cdi(random_object((8, 8, 8), seed=1), oversampling=3, photons=1e10, beamstop=1.0, seed=2)


@pytest.fixture
def job(tmp_path, pattern):
    pattern.intensity.tofile(tmp_path / "intens_010.bin")
    return {
        "srand": 1,
        "data": "intens_010.bin",
        "data_dim": "3d",
        "number_of_outputs_images": 2,
        "number_of_outputs_scores": 3,
        "support_algo": "static",
        "support_size": 10,
        "algo": [
            {"name": "hio", "number_of_iterations": 150, "beta_init": 0.9, "beta_final": 0.9},
            {"name": "er", "number_of_iterations": 50},
        ],
        "out_file": "phased_output.h5",
    }


def run(tmp_path, job, *extra):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return cli.main(["phase", str(path), *extra])


def test_seed_job_runs_end_to_end(tmp_path, job, pattern, capsys):
    assert run(tmp_path, job) == 0
    assert "wrote" in capsys.readouterr().out
    with h5py.File(tmp_path / "phased_output.h5") as f:
        images, scores = f["images"][()], f["scores"][()]
        assert images.shape == (2, 24, 24, 24) and images.dtype == np.float32
        assert scores.shape == (3,) and np.all(np.diff(scores) >= 0)
        assert f["supports"].shape == (2, 24, 24, 24)
        assert f["prtf"].shape == (12,)
        recorded = json.loads(f.attrs["job"])
    assert recorded["srand"] == 1 and recorded["algo"][1]["name"] == "er"
    assert recorded["data"] == str(tmp_path / "intens_010.bin")
    assert aligned_error(images[0], pattern.object) < 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["intens_010.bin", "job.json", "phased_output.h5"]


def test_shrinkwrap_2d_job_with_npy_and_h5_mask(tmp_path, capsys):
    data = simulate_cdi(random_object((12, 12), seed=4), oversampling=3, seed=5)
    np.save(tmp_path / "pattern.npy", np.where(data.mask, 0, data.intensity))
    with h5py.File(tmp_path / "mask.h5", "w") as f:
        f["mask"] = data.mask.astype(np.uint8)
    job = {
        "data": "pattern.npy",
        "data_dim": "2d",
        "support_size": 20,
        "support_algo": "shrinkwrap",
        "shrinkwrap_every": 10,
        "mask": "mask.h5:/mask",
        "constraint": "real",
        "srand": 0,
        "algo": [
            {"name": "raar", "number_of_iterations": 100, "beta_init": 0.9},
            {"name": "er", "number_of_iterations": 20},
        ],
        "out_file": "out.h5",
        "precision": "double",
    }
    assert run(tmp_path, job, "--quiet") == 0
    assert capsys.readouterr().out == ""
    with h5py.File(tmp_path / "out.h5") as f:
        assert f["images"].shape == (1, 36, 36) and f["images"].dtype == np.float64
        assert json.loads(f.attrs["job"])["shrinkwrap_every"] == 10


def test_missing_srand_is_drawn_and_recorded(tmp_path, job):
    del job["srand"]
    job["algo"] = [{"name": "er", "number_of_iterations": 2}]
    assert run(tmp_path, job, "-q") == 0
    with h5py.File(tmp_path / "phased_output.h5") as f:
        assert isinstance(json.loads(f.attrs["job"])["srand"], int)


def test_check_validates_without_writing(tmp_path, job, capsys):
    assert run(tmp_path, job, "--check") == 0
    assert "valid" in capsys.readouterr().out
    assert not (tmp_path / "phased_output.h5").exists()


def _set(key, value):
    def change(job):
        job[key] = value

    return change


def _drop(key):
    def change(job):
        del job[key]

    return change


def _algo(i, key, value):
    def change(job):
        job["algo"][i][key] = value

    return change


CONFIG_ERRORS = [
    (_set("colour", "red"), "unknown key 'colour'"),
    (_drop("data"), "missing required key 'data'"),
    (_drop("algo"), "missing required key 'algo'"),
    (_drop("out_file"), "missing required key 'out_file'"),
    (_drop("support_size"), "missing required key 'support_size'"),
    (_drop("data_dim"), "missing required key 'data_dim'"),
    (_set("data_dim", "4d"), "'data_dim' must be one of"),
    (_set("data_dim", "2d"), "'data': "),
    (_set("srand", -1), "'srand' must be an integer"),
    (_set("srand", 1.5), "'srand' must be an integer"),
    (_set("srand", True), "'srand' must be an integer"),
    (_set("number_of_outputs_scores", 0), "'number_of_outputs_scores' must be an integer >= 1"),
    (_set("number_of_outputs_images", "2"), "'number_of_outputs_images' must be an integer"),
    (_set("number_of_outputs_images", 4), "must not exceed 'number_of_outputs_scores'"),
    (_set("support_algo", "auto"), "'support_algo' must be one of"),
    (_set("support_size", 0), "'support_size' must be a number > 0"),
    (_set("support_size", "30"), "'support_size' must be a number"),
    (_set("support_size", 24), "'support_size' (24) must be smaller"),
    (_set("shrinkwrap_sigma", 2.0), "'shrinkwrap_sigma' applies only with"),
    (_set("constraint", "nonneg"), "'constraint' must be one of"),
    (_set("precision", "half"), "'precision' must be one of"),
    (_set("centered", "yes"), "'centered' must be true or false"),
    (_set("algo", []), "'algo' must be a non-empty list"),
    (_set("algo", {"name": "hio"}), "'algo' must be a non-empty list"),
    (_set("algo", ["hio"]), "algo[0] must be an object"),
    (_algo(0, "name", "dm"), "algo[0].name must be one of"),
    (_algo(1, "number_of_iterations", 0), "algo[1].number_of_iterations must be an integer >= 1"),
    (_algo(1, "number_of_iterations", 2.5), "algo[1].number_of_iterations must be an integer"),
    (_algo(0, "beta_init", 1.5), "algo[0].beta_init must be a number in (0.0, 1.0]"),
    (_algo(0, "beta_final", 0), "algo[0].beta_final must be a number"),
    (_algo(0, "gamma", 0.5), "algo[0]: unknown key 'gamma'"),
    (lambda job: job["algo"][1].pop("number_of_iterations"), "algo[1].number_of_iterations is required"),
    (_set("data", ""), "'data' must be a non-empty path"),
    (_set("data", "nothing.bin"), "'data': "),
    (_set("data", "intens.tif"), "unknown volume format"),
    (_set("mask", "nomask.npy"), "'mask': "),
    (_set("out_file", "no/such/dir/out.h5"), "'out_file': folder"),
]


@pytest.mark.parametrize(
    "change, message", CONFIG_ERRORS, ids=[m.split()[0].strip("'") + str(i) for i, (_, m) in enumerate(CONFIG_ERRORS)]
)
def test_every_config_error_is_one_message_naming_it(tmp_path, job, capsys, change, message):
    change(job)
    assert run(tmp_path, job) == 2
    err = capsys.readouterr().err
    assert err.startswith("beamhub phase: error: ")
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "phased_output.h5").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_malformed_job_file(tmp_path, capsys, content, message):
    (tmp_path / "job.json").write_text(content)
    assert cli.main(["phase", str(tmp_path / "job.json")]) == 2
    assert message in capsys.readouterr().err


def test_missing_job_file(tmp_path, capsys):
    assert cli.main(["phase", str(tmp_path / "absent.json")]) == 2
    assert "cannot read job file" in capsys.readouterr().err


def test_failed_run_leaves_previous_output_untouched(tmp_path, job, monkeypatch):
    (tmp_path / "phased_output.h5").write_bytes(b"previous result")

    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # as when a batch job is killed mid-run

    monkeypatch.setattr("beamhub.kernels.phasing.phase", fail)
    # the command may also hold its own reference, imported at module top
    monkeypatch.setattr("beamhub.kernels.commands.phase.phase", fail, raising=False)
    assert run(tmp_path, job, "-q") == 130
    assert (tmp_path / "phased_output.h5").read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["intens_010.bin", "job.json", "phased_output.h5"]


def test_interrupted_write_leaves_no_partial_file(tmp_path, job, monkeypatch):
    job["algo"] = [{"name": "er", "number_of_iterations": 2}]
    import h5py as real_h5py

    class Dying(real_h5py.File):
        def create_dataset(self, name, *args, **kwargs):
            if name == "supports":
                raise KeyboardInterrupt
            return super().create_dataset(name, *args, **kwargs)

    monkeypatch.setattr(real_h5py, "File", Dying)
    assert run(tmp_path, job, "-q") == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["intens_010.bin", "job.json"]


def test_help_documents_the_job(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["phase", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--check" in out
    assert all(f"  {key} " in out for key in JOB_KEYS)


def test_user_docs_cover_every_key():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "phasing.md").read_text()
    assert all(f"| `{key}` |" in docs for key in JOB_KEYS)
