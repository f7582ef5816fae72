"""Intensity volumes in and HDF5 results out.

Readers accept the three spellings a facility job uses for an input volume:

``path.bin``            raw float64 values as Dragonfly writes them: a cube (or a
                        square for 2D) whose side follows from the file length;
                        negative values mean "unknown";
``path.npy``            a numpy array file;
``path.h5:/dataset``    one dataset of an HDF5 file (also ``.hdf5``, ``.cxi``, ``.nxs``).

Every reader raises :class:`~beamhub.kernels.io.InputFormatError` naming the file,
the dataset and what was wrong.  :func:`write_h5` writes through
:func:`~beamhub.kernels.io.atomic_output`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from beamhub.kernels.io.atomic import InputFormatError, atomic_output
from beamhub.kernels.io.hdf5errors import HDF5_ERRORS, describe

__all__ = ["read_bin", "read_h5_dataset", "read_volume", "split_h5_spec", "write_h5"]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".cxi", ".nxs")


def split_h5_spec(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """Split ``"file.h5:/dataset"`` into ``(Path("file.h5"), "/dataset")``.

    A spec without a ``:`` after an HDF5 suffix returns ``(path, None)``.
    """
    text = os.fspath(spec)
    lowered = text.lower()
    for suffix in HDF5_SUFFIXES:
        marker = lowered.rfind(suffix + ":")
        if marker >= 0:
            cut = marker + len(suffix)
            return Path(text[:cut]), text[cut + 1 :] or None
    return Path(text), None


def read_bin(path: str | os.PathLike, ndim: int = 3) -> np.ndarray:
    """A raw float64 volume as Dragonfly writes it (``intens_*.bin``).

    Parameters
    ----------
    path : path-like
    ndim : {3, 2}
        3 for a cube (side ``n`` with ``n**3`` values), 2 for a square.

    Returns
    -------
    (n, n, n) or (n, n) float64 ndarray
        Negative values are kept (they mark unknown pixels).
    """
    path = Path(path)
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputFormatError(f"{path}: cannot read ({exc.strerror})") from exc
    if size == 0 or size % 8:
        raise InputFormatError(f"{path}: {size} bytes is not a whole number of float64 values")
    count = size // 8
    side = int(round(count ** (1.0 / ndim)))
    if side**ndim != count:
        shape = "cube" if ndim == 3 else "square"
        raise InputFormatError(
            f"{path}: {count} float64 values do not form a {shape} (nearest side {side} needs {side**ndim})"
        )
    data = np.fromfile(path, dtype="<f8")
    return data.reshape((side,) * ndim)


def read_h5_dataset(path: str | os.PathLike, dataset: str | None) -> np.ndarray:
    """One dataset of an HDF5 file as a numpy array.

    Parameters
    ----------
    path : path-like
    dataset : str or None
        Path inside the file; None is accepted when the file holds exactly one dataset.
    """

    path = Path(path)
    if not path.is_file():
        raise InputFormatError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if dataset is None:
                names = _datasets(f)
                if len(names) != 1:
                    raise InputFormatError(
                        f"{path}: name the dataset as {path}:/DATASET; "
                        f"the file holds {', '.join(names) or 'no dataset'}"
                    )
                dataset = names[0]
            if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                names = _datasets(f)
                raise InputFormatError(f"{path}: no dataset {dataset!r}; the file holds {', '.join(names) or 'none'}")
            return np.asarray(f[dataset][()])
    except InputFormatError:
        raise
    except HDF5_ERRORS as exc:
        raise InputFormatError(f"{path}: not a readable HDF5 file ({describe(exc)})") from None


def _datasets(f) -> list[str]:

    names = []
    f.visititems(lambda name, obj: names.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
    return names


def read_volume(spec: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an intensity volume from ``.bin``, ``.npy`` or ``file.h5:/dataset``.

    Parameters
    ----------
    spec : str or path-like
        File name, with ``:/dataset`` for HDF5.
    ndim : {2, 3} or None
        Expected number of axes.  Required for ``.bin`` (default 3); checked
        for the other formats.

    Returns
    -------
    float64 ndarray with ``ndim`` axes.
    """
    path, dataset = split_h5_spec(spec)
    suffix = path.suffix.lower()
    if suffix == ".bin":
        data = read_bin(path, ndim or 3)
    elif suffix == ".npy":
        if not path.is_file():
            raise InputFormatError(f"{path}: no such file")
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputFormatError(f"{path}: not a readable .npy array ({exc})") from exc
    elif suffix in HDF5_SUFFIXES:
        data = read_h5_dataset(path, dataset)
    else:
        raise InputFormatError(
            f"{path}: unknown volume format {suffix or '(no suffix)'!r}; use .bin (Dragonfly), .npy or FILE.h5:/DATASET"
        )
    if data.dtype.kind not in "fiu":
        raise InputFormatError(f"{spec}: expected real numbers, found dtype {data.dtype}")
    if ndim is not None and data.ndim != ndim:
        raise InputFormatError(f"{spec}: expected {ndim} axes, found shape {data.shape}")
    return data.astype(np.float64, copy=False)


def write_h5(
    path: str | os.PathLike,
    datasets: Mapping[str, Any],
    attrs: Mapping[str, Any] | None = None,
    *,
    compression: str | None = "gzip",
) -> Path:
    """Write ``datasets`` (name -> array) and root ``attrs`` into a new HDF5 file, atomically.

    The file appears under ``path`` only once complete; on any error the
    previous file (if any) is untouched.

    Parameters
    ----------
    path : path-like
    datasets : mapping of str to array-like
        Arrays of 2 or more elements are chunked and compressed.
    attrs : mapping of str to str, number or array, optional
    compression : str or None
        h5py compression filter for the larger datasets.

    Returns
    -------
    Path of the written file.
    """

    path = Path(path)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, value in datasets.items():
                value = np.asarray(value)
                opts = {"compression": compression} if value.size > 1024 and compression else {}
                f.create_dataset(name, data=value, **opts)
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
    return path
