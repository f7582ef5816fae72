"""Data Exchange reading by rows, validation of bad scans, atomic writing."""

import h5py
import numpy as np
import pytest

from beamhub.kernels import sim
from beamhub.kernels.io import InputFormatError
from beamhub.kernels.io.dxchange import DataExchangeScan, ReconWriter, read_dx, write_dx


@pytest.fixture()
def scan():
    return sim.simulate_scan(n=32, rows=5, n_angles=20, seed=1)


def test_round_trip_and_row_ranges(tmp_path, scan):
    path = tmp_path / "scan.h5"
    write_dx(path, scan.tomo, scan.flat, scan.dark, scan.theta)
    tomo, flat, dark, theta = read_dx(path)
    np.testing.assert_array_equal(tomo, scan.tomo)
    np.testing.assert_array_equal(flat, scan.flat)
    np.testing.assert_array_equal(dark, scan.dark)
    np.testing.assert_allclose(theta, scan.theta)
    with DataExchangeScan(path) as dx:
        assert dx.shape == scan.tomo.shape
        t, f, d = dx.read_rows(1, 3)
        np.testing.assert_array_equal(t, scan.tomo[:, 1:3])
        np.testing.assert_array_equal(f, scan.flat[:, 1:3])
        with pytest.raises(InputFormatError, match="rows 4:9"):
            dx.read_rows(4, 9)
    sub = read_dx(path, rows=slice(2, 4))[0]
    np.testing.assert_array_equal(sub, scan.tomo[:, 2:4])


def _write(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[f"/exchange/{name}"] = value


def test_missing_dataset_is_named(tmp_path, scan):
    path = tmp_path / "bad.h5"
    _write(path, data=scan.tomo, data_white=scan.flat, theta=scan.theta)
    with pytest.raises(InputFormatError, match="/exchange/data_dark is missing"):
        DataExchangeScan(path)


def test_mismatched_shapes_are_refused(tmp_path, scan):
    path = tmp_path / "bad.h5"
    _write(path, data=scan.tomo, data_white=scan.flat[:, :, :-1], data_dark=scan.dark, theta=scan.theta)
    with pytest.raises(InputFormatError, match="data_white has frames of"):
        DataExchangeScan(path)
    _write(path, data=scan.tomo, data_white=scan.flat, data_dark=scan.dark, theta=scan.theta[:-1])
    with pytest.raises(InputFormatError, match="19 angles but /exchange/data has 20"):
        DataExchangeScan(path)
    _write(path, data=scan.tomo[0], data_white=scan.flat, data_dark=scan.dark, theta=scan.theta)
    with pytest.raises(InputFormatError, match="must be 3-D"):
        DataExchangeScan(path)


def test_degrees_are_refused_unless_declared(tmp_path, scan):
    path = tmp_path / "deg.h5"
    _write(path, data=scan.tomo, data_white=scan.flat, data_dark=scan.dark, theta=np.rad2deg(scan.theta))
    with pytest.raises(InputFormatError, match="looks like degrees"):
        DataExchangeScan(path)
    with DataExchangeScan(path, degrees=True) as dx:
        np.testing.assert_allclose(dx.theta, scan.theta)
    write_dx(path, scan.tomo, scan.flat, scan.dark, np.rad2deg(scan.theta), theta_units="deg")
    with DataExchangeScan(path) as dx:
        np.testing.assert_allclose(dx.theta, scan.theta)


def test_not_hdf5_and_absent(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("not hdf5")
    with pytest.raises(InputFormatError, match="not a readable HDF5"):
        DataExchangeScan(bad)
    with pytest.raises(InputFormatError, match="no such file"):
        DataExchangeScan(tmp_path / "absent.h5")


def test_recon_writer_is_atomic(tmp_path):
    out = tmp_path / "rec.h5"
    with ReconWriter(out, (3, 4, 4), {"center": 1.5}) as w:
        w.write(0, np.ones((2, 4, 4)))
        assert not out.exists()  # nothing at the target until the end
        w.write(2, np.zeros((1, 4, 4)))
    with h5py.File(out) as f:
        assert f["/exchange/data"].dtype == np.float32
        assert f["/exchange/data"][0, 0, 0] == 1 and f["/process/tomo"].attrs["center"] == 1.5
    with pytest.raises(RuntimeError):
        with ReconWriter(out, (3, 4, 4), {"center": 9.0}) as w:
            w.write(0, np.full((3, 4, 4), 7.0))
            raise RuntimeError("killed")
    with h5py.File(out) as f:  # the previous complete file is untouched
        assert f["/process/tomo"].attrs["center"] == 1.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.h5"]
