"""Data Exchange HDF5 for tomography (the layout of tomopy's dxchange and APS beamlines).

A scan holds ``/exchange/data`` (projections, angles x rows x columns),
``/exchange/data_white`` (flats), ``/exchange/data_dark`` (darks) and
``/exchange/theta`` (angles, one per projection).  :class:`DataExchangeScan`
checks a file once and then reads any range of detector rows, so a scan larger
than memory is reconstructed a slab at a time.  :class:`ReconWriter` writes
float32 slices into a new file as they come and only renames it into place
when every slice is there (:func:`beamhub.kernels.io.atomic_output`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np

from beamhub.kernels.io.atomic import InputFormatError, atomic_output
from beamhub.kernels.io.hdf5errors import HDF5_ERRORS, describe

__all__ = ["DataExchangeScan", "ReconWriter", "read_dx", "write_dx"]

DATA, WHITE, DARK, THETA = ("/exchange/data", "/exchange/data_white", "/exchange/data_dark", "/exchange/theta")

# More than a full turn and a bit: angles this large are degrees, not radians.
_RADIAN_LIMIT = 2 * np.pi + 0.1


def _units(dset) -> str:
    raw = dset.attrs.get("units", b"")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return str(raw).strip().lower()


class DataExchangeScan:
    """A Data Exchange scan opened for reading by row ranges.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.
    degrees : bool
        The file stores ``/exchange/theta`` in degrees (convert to radians).
        Without it, angles that look like degrees are refused, unless the
        dataset says ``units="deg"``/``"degrees"``.

    Attributes
    ----------
    shape : tuple of int
        ``(angles, rows, columns)`` of ``/exchange/data``.
    theta : numpy.ndarray, shape (angles,), float64, radians

    Raises
    ------
    InputFormatError
        Missing datasets, wrong dimensions, flats/darks or angles that do not
        match the projections, non-finite or degree-valued angles.

    Examples
    --------
    >>> with DataExchangeScan("scan.h5") as scan:          # doctest: +SKIP
    ...     tomo, flat, dark = scan.read_rows(100, 116)
    """

    def __init__(self, path: str | os.PathLike, degrees: bool = False):
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise InputFormatError(f"{self.path}: no such file") from None
        except OSError as exc:
            raise InputFormatError(f"{self.path}: not a readable HDF5 file ({exc})") from None
        try:
            self._check(degrees)
        except InputFormatError:
            self._file.close()
            raise
        except HDF5_ERRORS as exc:
            self._file.close()
            raise InputFormatError(f"{self.path}: damaged HDF5 file ({describe(exc)})") from None
        except BaseException:
            self._file.close()
            raise

    def _dataset(self, name: str, ndim: int):
        if name not in self._file:
            raise InputFormatError(
                f"{self.path}: dataset {name} is missing; a Data Exchange scan needs "
                f"{DATA}, {WHITE}, {DARK} and {THETA}"
            )
        dset = self._file[name]
        if not isinstance(dset, h5py.Dataset) or dset.ndim != ndim:
            shape = getattr(dset, "shape", "a group")
            raise InputFormatError(f"{self.path}: {name} must be {ndim}-D, found {shape}")
        return dset

    def _check(self, degrees: bool) -> None:
        self.data = self._dataset(DATA, 3)
        self.white = self._dataset(WHITE, 3)
        self.dark = self._dataset(DARK, 3)
        theta_ds = self._dataset(THETA, 1)
        self.shape = tuple(int(s) for s in self.data.shape)
        n_angles, rows, cols = self.shape
        if min(self.shape) < 1:
            raise InputFormatError(
                f"{self.path}: {DATA} has shape {self.shape}: no projections to reconstruct "
                "(angles, rows and columns must all be at least 1)"
            )
        for name, dset in ((WHITE, self.white), (DARK, self.dark)):
            if tuple(dset.shape[1:]) != (rows, cols):
                raise InputFormatError(
                    f"{self.path}: {name} has frames of {tuple(dset.shape[1:])} but {DATA} has "
                    f"{(rows, cols)} (rows, columns)"
                )
            if dset.shape[0] < 1:
                raise InputFormatError(f"{self.path}: {name} holds no frames")
        theta = np.asarray(theta_ds[()], dtype=np.float64)
        if theta.size != n_angles:
            raise InputFormatError(
                f"{self.path}: {THETA} has {theta.size} angles but {DATA} has {n_angles} projections"
            )
        if not np.all(np.isfinite(theta)):
            raise InputFormatError(f"{self.path}: {THETA} contains NaN or infinite angles")
        units = _units(theta_ds)
        if degrees or units in ("deg", "degree", "degrees"):
            theta = np.deg2rad(theta)
        elif np.ptp(theta) > _RADIAN_LIMIT or np.abs(theta).max() > _RADIAN_LIMIT:
            raise InputFormatError(
                f"{self.path}: {THETA} spans {theta.min():g} to {theta.max():g}, which looks like "
                "degrees; Data Exchange angles are radians. Convert them (numpy.deg2rad), set the "
                "dataset attribute units='deg', or pass --degrees"
            )
        self.theta = theta

    @property
    def n_rows(self) -> int:
        """Detector rows (slices)."""
        return self.shape[1]

    def read_rows(self, start: int, stop: int):
        """Projections, flats and darks of detector rows ``start:stop``.

        Returns
        -------
        tomo : numpy.ndarray, shape (angles, stop-start, columns), file dtype
        flat : numpy.ndarray, shape (n_flat, stop-start, columns)
        dark : numpy.ndarray, shape (n_dark, stop-start, columns)
        """
        if not 0 <= start < stop <= self.n_rows:
            raise InputFormatError(f"{self.path}: rows {start}:{stop} are outside the {self.n_rows} detector rows")
        sel = np.s_[:, start:stop, :]
        try:
            return self.data[sel], self.white[sel], self.dark[sel]
        except HDF5_ERRORS as exc:
            raise InputFormatError(
                f"{self.path}: damaged HDF5 file, rows {start}:{stop} unreadable ({describe(exc)})"
            ) from None

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_dx(path, rows=None, degrees: bool = False):
    """Read a Data Exchange scan (all rows or a range) into memory.

    Parameters
    ----------
    path : str or os.PathLike
    rows : (int, int) or slice, optional
        Detector rows ``start, stop``; default all.
    degrees : bool
        See :class:`DataExchangeScan`.

    Returns
    -------
    tomo, flat, dark : numpy.ndarray, 3-D, file dtype
    theta : numpy.ndarray, shape (angles,), float64, radians
    """
    with DataExchangeScan(path, degrees=degrees) as scan:
        if rows is None:
            start, stop = 0, scan.n_rows
        elif isinstance(rows, slice):
            start, stop, _ = rows.indices(scan.n_rows)
        else:
            start, stop = rows
        tomo, flat, dark = scan.read_rows(start, stop)
        return tomo, flat, dark, scan.theta.copy()


def write_dx(path, tomo, flat, dark, theta, theta_units: str = "rad") -> None:
    """Write a scan in Data Exchange layout, atomically.

    Parameters
    ----------
    path : str or os.PathLike
    tomo : array, shape (angles, rows, columns)
    flat : array, shape (n_flat, rows, columns)
    dark : array, shape (n_dark, rows, columns)
    theta : array, shape (angles,)
        Angles in ``theta_units`` (``rad`` or ``deg``), stored as the ``units`` attribute.
    """
    tomo = np.asarray(tomo)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        chunk = (1, min(tomo.shape[1], 16), tomo.shape[2])
        f.create_dataset(DATA, data=tomo, chunks=chunk)
        f.create_dataset(WHITE, data=np.asarray(flat))
        f.create_dataset(DARK, data=np.asarray(dark))
        f.create_dataset(THETA, data=np.asarray(theta, dtype=np.float64))
        f[THETA].attrs["units"] = theta_units
        f.attrs["implements"] = "exchange"


class ReconWriter:
    """Write reconstructed slices into ``/exchange/data`` of a new HDF5 file, atomically.

    The file appears at ``path`` only when the ``with`` block ends without an
    error; an interrupted run leaves the previous file (or none).

    Parameters
    ----------
    path : str or os.PathLike
    shape : (int, int, int)
        ``(rows, N, N)`` of the whole reconstruction.
    parameters : dict
        Recorded as JSON in the attribute ``parameters`` of ``/process/tomo``
        and as one attribute per key.

    Examples
    --------
    >>> with ReconWriter("rec.h5", (16, 2048, 2048), {"center": 1023.5}) as out:  # doctest: +SKIP
    ...     out.write(0, slab)  # slab: (k, 2048, 2048) float32 for rows 0..k-1
    """

    def __init__(self, path, shape, parameters: dict | None = None):
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.parameters = dict(parameters or {})
        self._ctx = None
        self._file = None

    def __enter__(self):
        self._ctx = atomic_output(self.path)
        tmp = self._ctx.__enter__()
        try:
            self._file = h5py.File(tmp, "w")
            self._data = self._file.create_dataset(
                DATA,
                shape=self.shape,
                dtype=np.float32,
                chunks=(1, self.shape[1], self.shape[2]),
            )
            self._data.attrs["units"] = "1/pixel"
            self._file.attrs["implements"] = "exchange"
            self.update_parameters(self.parameters)
        except BaseException:
            self._close_file()
            self._ctx.__exit__(*_exc_info())
            raise
        return self

    def update_parameters(self, parameters: dict) -> None:
        """Record (more) parameters, e.g. a centre found while reconstructing."""
        self.parameters.update(parameters)
        group = self._file.require_group("/process/tomo")
        group.attrs["parameters"] = json.dumps(self.parameters, default=_jsonable)
        for key, value in self.parameters.items():
            group.attrs[key] = (
                value if isinstance(value, (int, float, str, bool)) else json.dumps(value, default=_jsonable)
            )

    def write(self, start: int, slab) -> None:
        """Store slices ``start : start + len(slab)`` (float32, shape (k, N, N))."""
        slab = np.asarray(slab, dtype=np.float32)
        self._data[start : start + slab.shape[0]] = slab

    def _close_file(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __exit__(self, *exc):
        self._close_file()
        return self._ctx.__exit__(*exc)


def _exc_info():

    return sys.exc_info()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
