"""Dragonfly's files: sparse photons (.emc / HDF5), detectors (text / HDF5), quaternions, outputs.

Layouts follow Dragonfly's C ``emc`` (see docs/emc.md, "File formats"):

* photons: a 1024-byte header (``num_data``, ``num_pix``, ``type`` as int32) then
  ``ones``, ``multi``, ``place_ones``, ``place_multi``, ``count_multi`` (int32); or an
  HDF5 file with ``num_pix`` and variable-length ``place_ones``, ``place_multi``,
  ``count_multi``.
* detector: text ``num_pix detd ewald_rad`` then ``qx qy qz corr mask`` per pixel; or
  HDF5 datasets ``qx qy qz corr mask detd ewald_rad``.
* quaternions: text ``num_rot`` then ``q0 q1 q2 q3 w`` per orientation.
* ``output_NNN.h5`` (``intens``, ``inter_weight``, ``orientations``, ``mutual_info``,
  ``likelihood``, ``scale``) and the tab-separated ``EMC.log``.

Readers check sizes and ranges and raise :class:`InputFormatError` naming the file and
the problem; every writer goes through :func:`atomic_output`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from beamhub.kernels.io.atomic import InputFormatError, atomic_output
from beamhub.kernels.io.hdf5errors import HDF5_ERRORS, describe

__all__ = [
    "SparsePhotons",
    "DetectorFile",
    "is_hdf5",
    "read_photons",
    "write_photons",
    "read_detector",
    "write_detector",
    "read_quaternions",
    "write_quaternions",
    "read_intens",
    "write_output",
    "read_scale_file",
    "write_intensity_bin",
    "format_log_header",
    "format_log_row",
    "read_log_rows",
    "LOG_COLUMNS",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HEADER_BYTES = 1024
LOG_COLUMNS = "Iter\ttime\trms_change\tinfo_rate\tlog-likelihood\tnum_rot\tbeta"


def is_hdf5(path: str | os.PathLike) -> bool:
    """True when the file starts with the HDF5 signature (the extension does not matter)."""
    with open(path, "rb") as f:
        return f.read(8) == HDF5_SIGNATURE


def _open_check(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputFormatError(f"{str(p)!r}: no such file")
    return p


# --------------------------------------------------------------------------- photons


@dataclass
class SparsePhotons:
    """Sparse photon frames as Dragonfly stores them.

    Attributes
    ----------
    num_pix : int
        Pixels per frame (the detector's pixel count).
    ones, multi : ndarray, shape (num_data,), int64
        Per frame, the number of one-photon pixels and of multi-photon pixels.
    place_ones : ndarray, shape (sum(ones),), int32
        Pixel indices of one-photon pixels, frame after frame.
    place_multi, count_multi : ndarray, shape (sum(multi),), int32
        Pixel indices and photon counts (≥ 2) of the multi-photon pixels.
    """

    num_pix: int
    ones: np.ndarray
    multi: np.ndarray
    place_ones: np.ndarray
    place_multi: np.ndarray
    count_multi: np.ndarray

    @property
    def num_data(self) -> int:
        """Number of frames."""
        return len(self.ones)

    @classmethod
    def from_dense(cls, frames: np.ndarray) -> SparsePhotons:
        """Sparse frames from dense counts, shape (num_data, num_pix), non-negative integers."""
        frames = np.asarray(frames)
        one = frames == 1
        many = frames > 1
        d1, p1 = np.nonzero(one)
        dm, pm = np.nonzero(many)
        return cls(
            num_pix=frames.shape[1],
            ones=one.sum(axis=1).astype(np.int64),
            multi=many.sum(axis=1).astype(np.int64),
            place_ones=p1.astype(np.int32),
            place_multi=pm.astype(np.int32),
            count_multi=frames[dm, pm].astype(np.int32),
        )

    def to_dense(self) -> np.ndarray:
        """Dense counts, shape (num_data, num_pix), int32 (small data only)."""
        out = np.zeros((self.num_data, self.num_pix), dtype=np.int32)
        out[np.repeat(np.arange(self.num_data), self.ones), self.place_ones] = 1
        out[np.repeat(np.arange(self.num_data), self.multi), self.place_multi] = self.count_multi
        return out

    def validate(self, name: str) -> None:
        """Raise :class:`InputFormatError` (naming ``name``) when indices or counts are out of range."""
        if np.any(self.ones < 0) or np.any(self.multi < 0):
            raise InputFormatError(f"{name}: negative photon-pixel counts in 'ones'/'multi'")
        for label, arr in (("place_ones", self.place_ones), ("place_multi", self.place_multi)):
            if arr.size and (arr.min() < 0 or arr.max() >= self.num_pix):
                raise InputFormatError(
                    f"{name}: {label} holds pixel index {int(arr.min() if arr.min() < 0 else arr.max())}"
                    f" outside 0..{self.num_pix - 1} (num_pix = {self.num_pix})"
                )
        if self.count_multi.size and self.count_multi.min() < 2:
            raise InputFormatError(
                f"{name}: count_multi holds {int(self.count_multi.min())}; multi-photon counts must be at least 2"
            )


def read_photons(path: str | os.PathLike) -> SparsePhotons:
    """Read a sparse photons file (Dragonfly binary ``.emc`` or its HDF5 variant).

    Parameters
    ----------
    path : str or PathLike
        The file; HDF5 is recognised by its signature, not its extension.

    Returns
    -------
    SparsePhotons

    Raises
    ------
    InputFormatError
        Missing file, truncated or oversized body, dense types (1, 2) or out-of-range values.
    """
    p = _open_check(path)
    if is_hdf5(p):
        return _read_photons_h5(p)
    size = p.stat().st_size
    if size < HEADER_BYTES:
        raise InputFormatError(f"{str(p)!r}: {size} bytes, shorter than the 1024-byte photons header")
    with open(p, "rb") as f:
        header = np.frombuffer(f.read(12), dtype="<i4")
        num_data, num_pix, kind = (int(x) for x in header)
        if num_data < 0 or num_pix <= 0:
            raise InputFormatError(f"{str(p)!r}: header says num_data={num_data}, num_pix={num_pix}")
        if kind != 0:
            what = {1: "dense int32", 2: "dense float64"}.get(kind, "unknown")
            raise InputFormatError(
                f"{str(p)!r}: photons type {kind} ({what}); only sparse photon counts (type 0) are supported"
            )
        f.seek(HEADER_BYTES)
        body = np.frombuffer(f.read(), dtype="<i4")
    if body.size < 2 * num_data:
        raise InputFormatError(
            f"{str(p)!r}: truncated: {body.size} int32 after the header, fewer than 2*num_data = {2 * num_data}"
        )
    ones = body[:num_data].astype(np.int64)
    multi = body[num_data : 2 * num_data].astype(np.int64)
    if np.any(ones < 0) or np.any(multi < 0):
        raise InputFormatError(f"{str(p)!r}: negative entries in ones/multi (corrupt file?)")
    n1, nm = int(ones.sum()), int(multi.sum())
    expected = 2 * num_data + n1 + 2 * nm
    if body.size != expected:
        raise InputFormatError(
            f"{str(p)!r}: body holds {body.size} int32 but the header and the ones/multi counts "
            f"need {expected} (file truncated or not a Dragonfly photons file)"
        )
    o = 2 * num_data
    data = SparsePhotons(
        num_pix=num_pix,
        ones=ones,
        multi=multi,
        place_ones=body[o : o + n1].astype(np.int32),
        place_multi=body[o + n1 : o + n1 + nm].astype(np.int32),
        count_multi=body[o + n1 + nm :].astype(np.int32),
    )
    data.validate(repr(str(p)))
    return data


def _read_photons_h5(p: Path) -> SparsePhotons:

    try:
        with h5py.File(p, "r") as f:
            missing = [k for k in ("num_pix", "place_ones", "place_multi", "count_multi") if k not in f]
            if missing:
                raise InputFormatError(f"{str(p)!r}: HDF5 photons file lacks dataset(s) {', '.join(missing)}")
            num_pix = int(np.asarray(f["num_pix"][()]).ravel()[0])
            po = list(f["place_ones"][()])
            pm = list(f["place_multi"][()])
            cm = list(f["count_multi"][()])
    except HDF5_ERRORS as exc:
        raise InputFormatError(f"{str(p)!r}: unreadable HDF5 ({describe(exc)})") from None
    if not (len(po) == len(pm) == len(cm)):
        raise InputFormatError(
            f"{str(p)!r}: place_ones, place_multi, count_multi have different "
            f"frame counts ({len(po)}, {len(pm)}, {len(cm)})"
        )
    if any(len(a) != len(b) for a, b in zip(pm, cm)):
        raise InputFormatError(f"{str(p)!r}: place_multi and count_multi differ in length in some frame")

    def cat(seqs):
        return np.concatenate([np.asarray(s, dtype=np.int32) for s in seqs]) if seqs else np.zeros(0, np.int32)

    data = SparsePhotons(
        num_pix=num_pix,
        ones=np.array([len(s) for s in po], dtype=np.int64),
        multi=np.array([len(s) for s in pm], dtype=np.int64),
        place_ones=cat(po),
        place_multi=cat(pm),
        count_multi=cat(cm),
    )
    data.validate(repr(str(p)))
    return data


def write_photons(path: str | os.PathLike, data: SparsePhotons, hdf5: bool | None = None) -> None:
    """Write sparse photons as Dragonfly's binary ``.emc`` or, for ``.h5``-like names, HDF5.

    Parameters
    ----------
    path : str or PathLike
        Target file (written atomically).
    data : SparsePhotons
    hdf5 : bool, optional
        Force the layout; by default HDF5 when the extension starts with ``.h`` (as make_data).
    """
    p = Path(path)
    if hdf5 is None:
        hdf5 = p.suffix.lower().startswith(".h")
    with atomic_output(p) as tmp:
        if hdf5:
            vlen = h5py.vlen_dtype(np.dtype("i4"))
            b1 = np.concatenate([[0], np.cumsum(data.ones)])
            bm = np.concatenate([[0], np.cumsum(data.multi)])
            with h5py.File(tmp, "w") as f:
                f["num_pix"] = np.array([data.num_pix], dtype=np.int32)
                for name, arr, b in (
                    ("place_ones", data.place_ones, b1),
                    ("place_multi", data.place_multi, bm),
                    ("count_multi", data.count_multi, bm),
                ):
                    ds = f.create_dataset(name, (data.num_data,), dtype=vlen)
                    for d in range(data.num_data):
                        ds[d] = np.asarray(arr[b[d] : b[d + 1]], dtype=np.int32)
        else:
            header = np.zeros(HEADER_BYTES // 4, dtype="<i4")
            header[:3] = (data.num_data, data.num_pix, 0)
            with open(tmp, "wb") as f:
                for arr in (header, data.ones, data.multi, data.place_ones, data.place_multi, data.count_multi):
                    f.write(np.ascontiguousarray(arr, dtype="<i4").tobytes())


# --------------------------------------------------------------------------- detector


@dataclass
class DetectorFile:
    """A detector file's content, one entry per pixel.

    Attributes
    ----------
    q : ndarray, shape (num_pix, 3), float64
        ``(qx, qy, qz)`` of each pixel in voxels of the 3-D grid.
    corr : ndarray, shape (num_pix,), float64
        Solid angle × polarisation correction (unnormalised).
    mask : ndarray, shape (num_pix,), uint8
        0 good, 1 merged only, 2 ignored.
    detd : float
        Detector distance in pixels.
    ewald_rad : float
        Ewald-sphere radius in voxels.
    """

    q: np.ndarray
    corr: np.ndarray
    mask: np.ndarray
    detd: float = 0.0
    ewald_rad: float = 0.0

    @property
    def num_pix(self) -> int:
        """Number of pixels."""
        return len(self.corr)


def read_detector(path: str | os.PathLike) -> DetectorFile:
    """Read a Dragonfly detector file, text or HDF5 (recognised by signature).

    Raises
    ------
    InputFormatError
        Missing file, too few values, mismatched dataset shapes, bad mask values, non-finite q.
    """
    p = _open_check(path)
    if is_hdf5(p):
        det = _read_detector_h5(p)
    else:
        try:
            tokens = p.read_text().split()
        except UnicodeDecodeError:
            raise InputFormatError(f"{str(p)!r}: not a text detector file nor HDF5") from None
        if not tokens:
            raise InputFormatError(f"{str(p)!r}: empty detector file")
        try:
            num_pix = int(tokens[0])
        except ValueError:
            raise InputFormatError(f"{str(p)!r}: first token {tokens[0]!r} is not the pixel count") from None
        rest = len(tokens) - 1
        if rest == 5 * num_pix:  # old format: num_pix only
            head, body = [0.0, 0.0], tokens[1:]
        elif rest == 5 * num_pix + 2:
            head, body = tokens[1:3], tokens[3:]
        else:
            raise InputFormatError(
                f"{str(p)!r}: header says {num_pix} pixels, which needs {5 * num_pix} values "
                f"(qx qy qz corr mask each) after it, but the file has {rest}"
            )
        try:
            vals = np.array(body, dtype=np.float64).reshape(num_pix, 5)
            detd, ewald = float(head[0]), float(head[1])
        except ValueError as exc:
            raise InputFormatError(f"{str(p)!r}: non-numeric value ({exc})") from None
        det = DetectorFile(
            q=vals[:, :3].copy(), corr=vals[:, 3].copy(), mask=vals[:, 4].astype(np.uint8), detd=detd, ewald_rad=ewald
        )
        if np.any(vals[:, 4] != np.round(vals[:, 4])):
            raise InputFormatError(f"{str(p)!r}: mask column holds non-integers")
    if not np.all(np.isfinite(det.q)) or not np.all(np.isfinite(det.corr)):
        raise InputFormatError(f"{str(p)!r}: non-finite q or corr values")
    if det.mask.size and det.mask.max() > 2:
        raise InputFormatError(f"{str(p)!r}: mask values must be 0, 1 or 2 (found {int(det.mask.max())})")
    return det


def _read_detector_h5(p: Path) -> DetectorFile:

    try:
        with h5py.File(p, "r") as f:
            missing = [k for k in ("qx", "qy", "qz", "corr", "mask") if k not in f]
            if missing:
                raise InputFormatError(f"{str(p)!r}: HDF5 detector lacks dataset(s) {', '.join(missing)}")
            arrs = {k: np.asarray(f[k][()]) for k in ("qx", "qy", "qz", "corr", "mask")}
            detd = float(np.asarray(f["detd"][()]).ravel()[0]) if "detd" in f else 0.0
            ewald = float(np.asarray(f["ewald_rad"][()]).ravel()[0]) if "ewald_rad" in f else 0.0
    except HDF5_ERRORS as exc:
        raise InputFormatError(f"{str(p)!r}: unreadable HDF5 ({describe(exc)})") from None
    shapes = {k: a.shape for k, a in arrs.items()}
    if len(set(shapes.values())) != 1:
        raise InputFormatError(f"{str(p)!r}: detector datasets differ in shape: {shapes}")
    q = np.stack([arrs[k].astype(np.float64).ravel() for k in ("qx", "qy", "qz")], axis=1)
    return DetectorFile(
        q=q,
        corr=arrs["corr"].astype(np.float64).ravel(),
        mask=arrs["mask"].ravel().astype(np.uint8),
        detd=detd,
        ewald_rad=ewald,
    )


def write_detector(path: str | os.PathLike, det: DetectorFile, hdf5: bool | None = None) -> None:
    """Write a detector file as Dragonfly's text layout or, for ``.h5``-like names, HDF5."""
    p = Path(path)
    if hdf5 is None:
        hdf5 = p.suffix.lower() in (".h5", ".hdf5", ".hdf")
    with atomic_output(p) as tmp:
        if hdf5:
            with h5py.File(tmp, "w") as f:
                for i, k in enumerate(("qx", "qy", "qz")):
                    f[k] = np.ascontiguousarray(det.q[:, i], dtype=np.float64)
                f["corr"] = det.corr.astype(np.float64)
                f["mask"] = det.mask.astype(np.uint8)
                f["detd"] = np.float64(det.detd)
                f["ewald_rad"] = np.float64(det.ewald_rad)
        else:
            with open(tmp, "w") as f:
                f.write("%d %.6f %.6f\n" % (det.num_pix, det.detd, det.ewald_rad))
                rows = np.column_stack([det.q, det.corr])
                for row, m in zip(rows, det.mask):
                    f.write("%21.15e %21.15e %21.15e %21.15e %d\n" % (*row, int(m)))


# --------------------------------------------------------------------------- quaternions


def read_quaternions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a quaternion file (``num_rot`` then ``q0 q1 q2 q3 w`` each).

    Returns
    -------
    quats : ndarray, shape (num_rot, 4), float64
    weights : ndarray, shape (num_rot,), float64
        Renormalised to sum 1, as Dragonfly does.
    """
    p = _open_check(path)
    tokens = p.read_text().split()
    try:
        num_rot = int(tokens[0])
        vals = np.array(tokens[1:], dtype=np.float64)
    except (ValueError, IndexError):
        raise InputFormatError(f"{str(p)!r}: not a quaternion file (num_rot then 5 numbers each)") from None
    if num_rot <= 0 or vals.size != 5 * num_rot:
        raise InputFormatError(
            f"{str(p)!r}: header says {num_rot} orientations, needing {5 * num_rot} "
            f"values, but the file has {vals.size}"
        )
    vals = vals.reshape(num_rot, 5)
    w = vals[:, 4]
    if np.any(w < 0) or w.sum() <= 0:
        raise InputFormatError(f"{str(p)!r}: weights must be non-negative with a positive sum")
    return vals[:, :4].copy(), w / w.sum()


def write_quaternions(path: str | os.PathLike, quats: np.ndarray, weights: np.ndarray) -> None:
    """Write quaternions and weights in make_quaternion's text layout."""
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        f.write(f"{len(quats)}\n")
        for q, w in zip(np.asarray(quats), np.asarray(weights)):
            f.write("".join("%+17.15f " % v for v in (*q, w)) + "\n")


# --------------------------------------------------------------------------- volumes and outputs


def read_intens(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """A start model: HDF5 ``intens`` ((modes,) s, s, s) or raw float64 ``.bin``; returns (s, s, s)."""
    p = _open_check(path)
    if is_hdf5(p):
        try:
            with h5py.File(p, "r") as f:
                if "intens" not in f:
                    raise InputFormatError(f"{str(p)!r}: no 'intens' dataset in the start model file")
                vol = np.asarray(f["intens"][()], dtype=np.float64)
        except HDF5_ERRORS as exc:
            raise InputFormatError(f"{str(p)!r}: unreadable HDF5 ({describe(exc)})") from None
        if vol.ndim == 4:
            vol = vol[0]
    else:
        raw = np.fromfile(p, dtype="<f8")
        s = round(raw.size ** (1 / 3))
        if s**3 != raw.size:
            raise InputFormatError(f"{str(p)!r}: {raw.size} float64 values do not make a cube")
        vol = raw.reshape(s, s, s)
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise InputFormatError(f"{str(p)!r}: intens has shape {vol.shape}, expected a cube")
    if size is not None and vol.shape[0] != size:
        raise InputFormatError(f"{str(p)!r}: model edge {vol.shape[0]} does not match the detector's model size {size}")
    return vol


def write_intensity_bin(path: str | os.PathLike, volume: np.ndarray) -> None:
    """Write a volume as raw float64 in C order (make_intensities' ``.bin``)."""
    with atomic_output(path) as tmp:
        np.ascontiguousarray(volume, dtype="<f8").tofile(tmp)


def read_scale_file(path: str | os.PathLike, num_data: int) -> np.ndarray:
    """Per-frame scale factors: HDF5 ``scale`` dataset or text, one float per frame."""
    p = _open_check(path)
    if is_hdf5(p):
        try:
            with h5py.File(p, "r") as f:
                if "scale" not in f:
                    raise InputFormatError(f"{str(p)!r}: no 'scale' dataset")
                s = np.asarray(f["scale"][()], dtype=np.float64).ravel()
        except HDF5_ERRORS as exc:
            raise InputFormatError(f"{str(p)!r}: unreadable HDF5 ({describe(exc)})") from None
    else:
        try:
            s = np.array(p.read_text().split(), dtype=np.float64)
        except ValueError:
            raise InputFormatError(f"{str(p)!r}: scale file holds non-numbers") from None
    if s.size != num_data:
        raise InputFormatError(f"{str(p)!r}: {s.size} scale factors for {num_data} frames")
    return s


def write_output(
    path: str | os.PathLike, datasets: Mapping[str, np.ndarray], attrs: Mapping[str, object] | None = None
) -> None:
    """Write one ``output_NNN.h5`` (or a checkpoint): each item a dataset, atomically."""

    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, value in datasets.items():
                f[name] = value
            for k, v in (attrs or {}).items():
                f.attrs[k] = v


def format_log_header(
    *,
    num_data: int,
    mean_count: float,
    num_rot: int,
    rel_num_pix: int,
    num_pix: int,
    size: int,
    num_threads: int,
    num_proc: int,
    alpha: float,
    beta: float,
    need_scaling: bool,
    num_data_total: int | None = None,
) -> str:
    """EMC.log header and column line, as Dragonfly writes them."""
    nd = str(num_data) if not num_data_total or num_data_total == num_data else f"{num_data}/{num_data_total}"
    return (
        "Data parameters:\n"
        f"\tnum_data = {nd}\n"
        f"\tmean_count = {mean_count:f}\n"
        "System size:\n"
        f"\tnum_rot = {num_rot}\n"
        f"\tnum_pix = {rel_num_pix}/{num_pix}\n"
        f"\tsystem_volume = 1 X {size} X {size} X {size}\n"
        "Reconstruction parameters:\n"
        f"\tnum_threads = {num_threads}\n"
        f"\tnum_proc = {num_proc}\n"
        f"\talpha = {alpha:f}\n"
        f"\tbeta = {beta:f}\n"
        f"\tneed_scaling = {'yes' if need_scaling else 'no'}\n"
        "\n" + LOG_COLUMNS + "\n"
    )


def format_log_row(
    iteration: int, seconds: float, rms_change: float, info_rate: float, likelihood: float, num_rot: int, beta: float
) -> str:
    """One EMC.log table row (``%d %4.2f %1.4e %f %.6e %-7d %f``, tab separated)."""
    return "%d\t%4.2f\t%1.4e\t%f\t%.6e\t%-7d\t%f\n" % (
        iteration,
        seconds,
        rms_change,
        info_rate,
        likelihood,
        num_rot,
        beta,
    )


def read_log_rows(path: str | os.PathLike) -> list[list[str]]:
    """The table rows of an EMC.log (each split on tabs); [] when the file has none."""
    p = Path(path)
    if not p.is_file():
        return []
    lines = p.read_text().splitlines()
    try:
        start = lines.index(LOG_COLUMNS) + 1
    except ValueError:
        return []
    return [ln.split("\t") for ln in lines[start:] if ln.strip()]
