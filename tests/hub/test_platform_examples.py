"""`beamhub up` seeds each empty raw-data folder with a small example (issue 17, item 3)."""

from __future__ import annotations

import os
import stat

import h5py
import pytest

from beamhub.hub.catalog import load_catalog
from beamhub.hub.platform import DEMO_EXAMPLES, Platform, PlatformConfig


def _platform(tmp_path, **kw) -> Platform:
    for folder in DEMO_EXAMPLES:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    lines = []
    platform = Platform(PlatformConfig(state_dir=tmp_path, **kw), say=lines.append)
    platform.lines = lines
    return platform


def test_empty_data_folders_get_the_examples_once(tmp_path):
    platform = _platform(tmp_path)
    platform.finish_seeding(platform.seed_examples())
    scan = tmp_path / "data/raw/tomo/example-scan.h5"
    with h5py.File(scan) as f:
        assert f["/exchange/data"].ndim == 3 and f["/exchange/theta"].attrs["units"] == "rad"
        assert f["/exchange/data_white"].shape[1:] == f["/exchange/data"].shape[1:]
    assert (tmp_path / "data/raw/tomo/example-scan-truth.h5").is_file()
    assert (tmp_path / "data/raw/spi/example/config.ini").is_file()
    assert (tmp_path / "data/raw/spi/example/photons.emc").is_file()
    # readable by others than the writer: a group-restricted folder then passes them to its group
    assert stat.S_IMODE(scan.stat().st_mode) & 0o044 == 0o044
    assert sum("example data written" in line for line in platform.lines) == 2, platform.lines

    # a second start leaves them alone (a user's deletion or an operator's data stays as it is)
    scan.unlink()
    assert platform.seed_examples() == []


def test_a_folder_with_data_is_not_touched_but_a_left_over_part_file_is_retried(tmp_path):
    platform = _platform(tmp_path, examples={"data/raw/tomo": DEMO_EXAMPLES["data/raw/tomo"]})
    (tmp_path / "data/raw/tomo/.example-scan.h5.x1.part").write_bytes(b"half")
    seeding = platform.seed_examples()
    assert [folder for folder, _ in seeding] == ["data/raw/tomo"]
    platform.finish_seeding(seeding)
    assert (tmp_path / "data/raw/tomo/example-scan.h5").is_file()

    (tmp_path / "data/raw/spi/beamtime-42.h5").write_bytes(b"real data")
    platform = _platform(tmp_path, examples={"data/raw/spi": DEMO_EXAMPLES["data/raw/spi"]})
    assert platform.seed_examples() == []
    assert os.listdir(tmp_path / "data/raw/spi") == ["beamtime-42.h5"]


def test_a_failing_writer_is_one_line_not_a_failed_start(tmp_path):
    platform = _platform(tmp_path, examples={"data/raw/tomo": ["tomo", "{folder}/x.h5", "--size", "2"]})
    platform.finish_seeding(platform.seed_examples())
    assert len(platform.lines) == 1
    assert "could not write the example data" in platform.lines[0] and "--size" in platform.lines[0]


@pytest.mark.parametrize("folder", sorted(DEMO_EXAMPLES))
def test_the_examples_go_to_the_catalogs_raw_data_folders(folder):
    local = {m.local_path for env in load_catalog() for m in env.mounts}
    assert folder in local
