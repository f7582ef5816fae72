"""Dragonfly file formats: exact layouts, round trips, and clear refusals of bad files."""

import struct

import h5py
import numpy as np
import pytest

from beamhub.kernels.io import InputFormatError
from beamhub.kernels.io import dragonfly as dio
from beamhub.kernels.sim.spi import spi_detector


@pytest.fixture
def photons():
    rng = np.random.default_rng(0)
    frames = rng.poisson(0.3, size=(7, 50))
    frames[3] = 0  # an empty frame
    return frames, dio.SparsePhotons.from_dense(frames)


def test_binary_photons_layout_is_dragonflys(tmp_path, photons):
    dense, sp = photons
    path = tmp_path / "p.emc"
    dio.write_photons(path, sp)
    raw = path.read_bytes()
    nd, npix, kind = struct.unpack("<3i", raw[:12])
    assert (nd, npix, kind) == (7, 50, 0)
    assert raw[12:1024] == bytes(1012)
    n1, nm = int((dense == 1).sum()), int((dense > 1).sum())
    assert len(raw) == 1024 + 4 * (2 * nd + n1 + 2 * nm)
    ones = np.frombuffer(raw[1024 : 1024 + 4 * nd], "<i4")
    np.testing.assert_array_equal(ones, (dense == 1).sum(axis=1))
    back = dio.read_photons(path)
    np.testing.assert_array_equal(back.to_dense(), dense)


def test_hdf5_photons_round_trip(tmp_path, photons):
    dense, sp = photons
    path = tmp_path / "p.h5"
    dio.write_photons(path, sp)
    with h5py.File(path) as f:
        assert f["place_ones"].shape == (7,) and int(f["num_pix"][0]) == 50
    np.testing.assert_array_equal(dio.read_photons(path).to_dense(), dense)


def test_truncated_photons_refused(tmp_path, photons):
    path = tmp_path / "p.emc"
    dio.write_photons(path, photons[1])
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(InputFormatError, match="p.emc.*truncated|p.emc.*need"):
        dio.read_photons(path)
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(InputFormatError, match="shorter than the 1024-byte"):
        dio.read_photons(path)


def test_out_of_range_pixel_refused(tmp_path):
    sp = dio.SparsePhotons(
        num_pix=10,
        ones=np.array([1]),
        multi=np.array([0]),
        place_ones=np.array([12], np.int32),
        place_multi=np.zeros(0, np.int32),
        count_multi=np.zeros(0, np.int32),
    )
    dio.write_photons(tmp_path / "bad.emc", sp)
    with pytest.raises(InputFormatError, match="pixel index 12 outside 0..9"):
        dio.read_photons(tmp_path / "bad.emc")


def test_dense_photon_types_refused(tmp_path):
    header = np.zeros(256, "<i4")
    header[:3] = (1, 4, 1)
    (tmp_path / "d.emc").write_bytes(header.tobytes() + np.zeros(4, "<i4").tobytes())
    with pytest.raises(InputFormatError, match="type 1"):
        dio.read_photons(tmp_path / "d.emc")


@pytest.mark.parametrize("name", ["det.dat", "det.h5"])
def test_detector_round_trip(tmp_path, name):
    det = spi_detector(9, 20.0, stoprad=1.0)
    dio.write_detector(tmp_path / name, det)
    back = dio.read_detector(tmp_path / name)
    np.testing.assert_allclose(back.q, det.q, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(back.corr, det.corr, rtol=1e-14)
    np.testing.assert_array_equal(back.mask, det.mask)
    assert back.detd == pytest.approx(20.0) and back.ewald_rad == pytest.approx(20.0)
    if name.endswith(".dat"):
        first = (tmp_path / name).read_text().splitlines()[:2]
        assert first[0] == "81 20.000000 20.000000"
        assert len(first[1].split()) == 5


def test_detector_text_old_header_and_errors(tmp_path):
    (tmp_path / "old.dat").write_text("2\n0 0 0 1 0\n1 0 0 1 2\n")
    det = dio.read_detector(tmp_path / "old.dat")
    assert det.num_pix == 2 and list(det.mask) == [0, 2]
    (tmp_path / "short.dat").write_text("3 10 10\n0 0 0 1 0\n")
    with pytest.raises(InputFormatError, match="short.dat.*3 pixels"):
        dio.read_detector(tmp_path / "short.dat")
    (tmp_path / "mask.dat").write_text("1 10 10\n0 0 0 1 7\n")
    with pytest.raises(InputFormatError, match="mask values"):
        dio.read_detector(tmp_path / "mask.dat")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["qx"] = np.zeros(3)
        f["qy"] = np.zeros(3)
        f["qz"] = np.zeros(4)
        f["corr"] = np.ones(3)
        f["mask"] = np.zeros(3, np.uint8)
    with pytest.raises(InputFormatError, match="differ in shape"):
        dio.read_detector(tmp_path / "bad.h5")
    with pytest.raises(InputFormatError, match="no such file"):
        dio.read_detector(tmp_path / "missing.dat")


def test_quaternion_file_round_trip_and_renormalised(tmp_path):
    q = np.array([[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]])
    dio.write_quaternions(tmp_path / "q.dat", q, np.array([2.0, 6.0]))
    text = (tmp_path / "q.dat").read_text().splitlines()
    assert text[0] == "2" and text[1].startswith("+1.000000000000000 ")
    back_q, back_w = dio.read_quaternions(tmp_path / "q.dat")
    np.testing.assert_allclose(back_q, q)
    np.testing.assert_allclose(back_w, [0.25, 0.75])
    (tmp_path / "bad.dat").write_text("3\n1 0 0 0 1\n")
    with pytest.raises(InputFormatError, match="3 orientations"):
        dio.read_quaternions(tmp_path / "bad.dat")


def test_log_format_matches_dragonfly():
    row = dio.format_log_row(3, 12.345, 0.00123456, 1.5, -123456.789, 25680, 0.0665)
    assert row == "3\t12.35\t1.2346e-03\t1.500000\t-1.234568e+05\t25680  \t0.066500\n"
    head = dio.format_log_header(
        num_data=10,
        mean_count=2.5,
        num_rot=60,
        rel_num_pix=5,
        num_pix=9,
        size=7,
        num_threads=2,
        num_proc=1,
        alpha=0,
        beta=0.5,
        need_scaling=False,
    )
    assert "\tnum_pix = 5/9\n" in head and "\tsystem_volume = 1 X 7 X 7 X 7\n" in head
    assert head.endswith(dio.LOG_COLUMNS + "\n")


def test_start_model_size_checked(tmp_path):
    dio.write_output(tmp_path / "m.h5", {"intens": np.ones((1, 5, 5, 5))})
    assert dio.read_intens(tmp_path / "m.h5", 5).shape == (5, 5, 5)
    with pytest.raises(InputFormatError, match="model edge 5 does not match.*7"):
        dio.read_intens(tmp_path / "m.h5", 7)
