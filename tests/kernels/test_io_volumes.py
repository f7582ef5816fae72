"""Volume readers (.bin, .npy, file.h5:/dataset) and the atomic HDF5 writer."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from beamhub.kernels.io import InputFormatError
from beamhub.kernels.io.volumes import read_bin, read_volume, split_h5_spec, write_h5


def test_bin_cube_side_from_length(tmp_path):
    cube = np.arange(5**3, dtype=np.float64).reshape(5, 5, 5) - 10
    cube.tofile(tmp_path / "intens_010.bin")
    got = read_volume(tmp_path / "intens_010.bin", ndim=3)
    np.testing.assert_array_equal(got, cube)  # negative values (unknown) kept
    assert got.dtype == np.float64


def test_bin_square_for_2d(tmp_path):
    square = np.random.default_rng(0).random((6, 6))
    square.tofile(tmp_path / "p.bin")
    np.testing.assert_array_equal(read_bin(tmp_path / "p.bin", ndim=2), square)


@pytest.mark.parametrize("count, message", [(26, "do not form a cube"), (0, "whole number")])
def test_bin_of_wrong_length_is_rejected(tmp_path, count, message):
    np.zeros(count).tofile(tmp_path / "bad.bin")
    with pytest.raises(InputFormatError, match=message) as err:
        read_volume(tmp_path / "bad.bin")
    assert "bad.bin" in str(err.value)


def test_bin_with_odd_byte_count(tmp_path):
    (tmp_path / "odd.bin").write_bytes(b"\0" * 13)
    with pytest.raises(InputFormatError, match="13 bytes"):
        read_bin(tmp_path / "odd.bin")


def test_npy_and_dimension_check(tmp_path):
    arr = np.ones((4, 4), np.float32)
    np.save(tmp_path / "a.npy", arr)
    assert read_volume(tmp_path / "a.npy", ndim=2).dtype == np.float64
    with pytest.raises(InputFormatError, match="expected 3 axes"):
        read_volume(tmp_path / "a.npy", ndim=3)


def test_h5_dataset_spec(tmp_path):
    vol = np.random.default_rng(1).random((3, 3, 3))
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["entry/data"] = vol
        f["other"] = np.zeros(2)
    np.testing.assert_array_equal(read_volume(f"{tmp_path}/v.h5:/entry/data"), vol)
    with pytest.raises(InputFormatError, match="no dataset '/nope'.*entry/data"):
        read_volume(f"{tmp_path}/v.h5:/nope")
    with pytest.raises(InputFormatError, match="name the dataset"):
        read_volume(tmp_path / "v.h5")


def test_split_h5_spec():
    path, ds = split_h5_spec("/ceph/x:y/run.h5:/entry/data")
    assert str(path) == "/ceph/x:y/run.h5" and ds == "/entry/data"
    assert split_h5_spec("a.npy")[1] is None


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing.npy", "no such file"),
        ("missing.h5:/d", "no such file"),
        ("vol.tif", "unknown volume format"),
        ("missing.bin", "cannot read"),
    ],
)
def test_unreadable_inputs_name_the_file(tmp_path, name, message):
    with pytest.raises(InputFormatError, match=message):
        read_volume(tmp_path / name)


def test_corrupt_h5_and_npy(tmp_path):
    (tmp_path / "c.h5").write_bytes(b"not hdf5")
    (tmp_path / "c.npy").write_bytes(b"not npy")
    with pytest.raises(InputFormatError, match="c.h5"):
        read_volume(f"{tmp_path}/c.h5:/d")
    with pytest.raises(InputFormatError, match="c.npy"):
        read_volume(tmp_path / "c.npy")


def test_write_h5_datasets_and_attrs(tmp_path):
    out = tmp_path / "r.h5"
    write_h5(out, {"images": np.ones((2, 40, 40), np.float32), "scores": [0.1, 0.2]}, {"job": "{}"})
    with h5py.File(out) as f:
        assert f["images"].shape == (2, 40, 40) and f["images"].compression == "gzip"
        np.testing.assert_allclose(f["scores"][()], [0.1, 0.2])
        assert f.attrs["job"] == "{}"


def test_write_h5_is_atomic(tmp_path):
    out = tmp_path / "r.h5"
    write_h5(out, {"x": np.arange(3)})

    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_h5(out, {"y": np.arange(5000), "z": Boom()})
    with h5py.File(out) as f:  # the previous complete file is untouched
        assert list(f) == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]
