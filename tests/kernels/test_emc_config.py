"""Dragonfly config.ini reading: parser rules, references, relative paths, one clear error per key."""

import numpy as np
import pytest

from beamhub.errors import UsageError
from beamhub.kernels.emc.config import EMCConfig, load_problem, parse_ini
from beamhub.kernels.io import dragonfly as dio
from beamhub.kernels.sim.spi import spi_detector


def test_parser_follows_dragonfly_rules(tmp_path):
    (tmp_path / "c.ini").write_text(
        "[emc]\nnum_div = 4 # trailing words ignored\n#beta = 3\n\tbeta = 9\nbeta=0.5\n"
        "beta_schedule = 1.5 10\n[other]\nnum_div = 9\n"
    )
    ini = parse_ini(tmp_path / "c.ini")
    assert ini["emc"]["num_div"][0] == "4"
    assert ini["emc"]["beta"] == ["0.5"]  # '#' line and tab-indented line ignored
    assert ini["emc"]["beta_schedule"][:2] == ["1.5", "10"]
    assert ini["other"]["num_div"] == ["9"]


def _folder(tmp_path, emc_lines, num_pix_photons=None):
    det = spi_detector(7, 14.0, stoprad=0.5)
    (tmp_path / "aux").mkdir()
    (tmp_path / "data").mkdir()
    dio.write_detector(tmp_path / "aux" / "det.dat", det)
    frames = np.random.default_rng(0).poisson(0.5, (20, num_pix_photons or det.num_pix))
    dio.write_photons(tmp_path / "aux" / "ph.emc", dio.SparsePhotons.from_dense(frames))
    text = (
        "[make_data]\nout_photons_file = aux/ph.emc\n"
        "[make_detector]\nout_detector_file = aux/det.dat\n[emc]\n" + emc_lines
    )
    (tmp_path / "config.ini").write_text(text)
    return tmp_path / "config.ini"


BASE = (
    "in_photons_file = make_data:::out_photons_file\n"
    "in_detector_file = make_detector:::out_detector_file\nnum_div = 2\n"
)


def test_references_defaults_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    cfg = EMCConfig.from_file(_folder(tmp_path, BASE + "beta_schedule = 1.41 10\n"))
    assert cfg.photons_files == [tmp_path / "aux" / "ph.emc"]
    assert cfg.detector_file == tmp_path / "aux" / "det.dat"
    assert cfg.output_folder == tmp_path / "data" and cfg.log_file == tmp_path / "EMC.log"
    assert cfg.beta is None and (cfg.beta_jump, cfg.beta_period) == (1.41, 10)
    assert cfg.need_scaling is False
    det, frames, q, w, model, scale = load_problem(cfg)
    assert frames.num_data == 20 and len(q) == 420 and model is None and scale is None


@pytest.mark.parametrize(
    "extra, message",
    [
        ("bogus_key = 1\n", r"\[emc\] bogus_key: unknown key"),
        ("need_scalng = 1\n", r"need_scalng: unknown key \(did you mean 'need_scaling'\?\)"),
        ("need_scaling = yes\n", r"need_scaling: 'yes' must be 0 or 1"),
        ("beta = hot\n", r"\[emc\] beta: 'hot' is not a number"),
        ("alpha = 2\n", r"alpha: 2 must be between 0.0 and 1.0"),
        ("point_group = A5\n", r"point_group: Dragonfly option not implemented"),
        ("in_quat_file = q.dat\n", r"give num_div or in_quat_file, not both"),
        ("output_folder = nowhere/\n", r"output_folder: folder .*nowhere.* does not exist"),
        ("beta_schedule = 2\n", r"beta_schedule: needs two values"),
    ],
)
def test_bad_values_name_the_key(tmp_path, extra, message):
    with pytest.raises(UsageError, match=message):
        EMCConfig.from_file(_folder(tmp_path, BASE + extra))


def test_missing_reference_and_file(tmp_path):
    path = _folder(tmp_path, "in_photons_file = make_data:::nothing\nin_detector_file = x\nnum_div = 2\n")
    with pytest.raises(UsageError, match=r"in_photons_file: refers to \[make_data\] nothing"):
        EMCConfig.from_file(path)
    (tmp_path / "c2.ini").write_text("[emc]\nin_photons_file = gone.emc\n")
    with pytest.raises(UsageError, match="in_photons_file: .*gone.emc' does not exist"):
        EMCConfig.from_file(tmp_path / "c2.ini")


def test_mismatched_photons_and_detector_refused(tmp_path):
    cfg = EMCConfig.from_file(_folder(tmp_path, BASE, num_pix_photons=30))
    with pytest.raises(UsageError, match="num_pix = 30 but the detector .* has 49 pixels"):
        load_problem(cfg)


def test_blacklist_and_selection(tmp_path):
    path = _folder(tmp_path, BASE + "blacklist_file = bl.txt\nselection = odd_only\n")
    (tmp_path / "bl.txt").write_text("\n".join(["1"] * 4 + ["0"] * 16))
    _, frames, *_ = load_problem(EMCConfig.from_file(path))
    # kept frames 4..19; odd_only keeps every second of them, starting with the second
    np.testing.assert_array_equal(frames.index, np.arange(5, 20, 2))
