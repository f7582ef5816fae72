"""The C kernels of the CPU EMC iteration (``_native.c``): built on first use, loaded with ctypes.

Why C: the two photon products are sparse-times-dense with 32 orientations per row; kept
in vector registers they run ~1.5x faster than the best numba form, and the annealed
probabilities use vectorised ``expf``/``logf`` (glibc's libmvec), which numba's LLVM
has no access to.  The library is compiled once per machine type by
:mod:`beamhub.kernels.native` (the system C compiler, ``-O3 -march=native -ffast-math
-fopenmp``, linked without -ffast-math so the process keeps IEEE subnormals, cached in
``$BEAMHUB_CACHE_DIR``, renamed into place: concurrent MPI ranks may build it at once).
Without a compiler, AVX2 or OpenMP :func:`~beamhub.kernels.emc.ops.ops_for` picks the
numba loops (``BEAMHUB_EMC_NATIVE=0`` forces that); both are checked against the
whole-array numpy set by the tests.  Nothing here needs numba.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from pathlib import Path

import numpy as np

from beamhub.kernels import native
from beamhub.kernels.emc.maximize import CUTOFF, PROB_FLOOR
from beamhub.kernels.emc.share import Prepared, prepare_share, threads_per_process

SOURCE = Path(__file__).with_name("_native.c")
#: Compile and link flags: our kernels' (:mod:`beamhub.kernels.native`: -ffast-math for glibc's
#: vectorised expf/logf, when compiling only) plus OpenMP.
FLAGS = [*native.FLAGS, "-fopenmp"]
LINK_FLAGS = [*native.LINK_FLAGS, "-fopenmp"]
#: One native call at a time per process (OpenMP teams from two Python threads would oversubscribe).
LAUNCH = threading.Lock()


def _l1d_bytes() -> int:
    """The L1 data cache of one core (Linux sysfs), else 32 KiB."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() != "1" or (index / "type").read_text().strip() != "Data":
                continue
            size = (index / "size").read_text().strip().upper()
            return int(size[:-1]) * 1024 if size.endswith("K") else int(size)
        except (OSError, ValueError):
            continue
    return 32 * 1024


#: Rows of a tile (32 floats each) per block of the photon products, pixels in the
#: likelihood and frames in the merge: a block's rows stay in the core's L1 data cache
#: while every list of photons in the block is summed, so five sixths of it (the rest for
#: the lists and output rows streaming past), in multiples of 64: 320 rows (40 KB) with
#: Zen 5's 48 KB (measured ~5 % faster than 256 there; 384 fills it and is slower), 192
#: with 32 KB; at most 448 (the lists hold uint16 byte offsets within a block).  The blocks
#: fix the order of the sums: the same on every run on one machine.
PIXEL_BLOCK = FRAME_BLOCK = max(64, min(448, _l1d_bytes() * 5 // 6 // 128 // 64 * 64))

__all__ = ["NativeOps", "Photons", "available", "build", "library", "photon_lists"]


def build(cc: str, dest_dir: Path) -> Path:
    """Compile ``_native.c`` into ``dest_dir`` (once per source/flags/CPU); returns the .so path."""
    return native.build(SOURCE, cc, dest_dir, FLAGS, LINK_FLAGS)


_P = ctypes.c_void_p
_I = ctypes.c_int64
_D = ctypes.c_double
_SIGNATURES = {
    "emc_tile_width": ([], ctypes.c_int),
    "emc_phase_times": ([_P], None),
    "emc_slice": ([ctypes.c_int, _P, _I, _I, _P, _I, _P, _D, _P, _P, _P], None),
    "emc_merge_weights": ([ctypes.c_int, _I, _P, _I, _P, _D, _I, _P], None),
    "emc_likelihood": ([ctypes.c_int, _P, _I, _I, _P, _I, _P, _D, _P, _I, _I, _P, _P, _P, _P], None),
    "emc_prob_shift": ([ctypes.c_int, _P, _I, _I, _I, _P, _P, _P, _P], None),
    "emc_prob_exp": ([ctypes.c_int, _P, _I, _I, _P, _P, _D, _P, _P], None),
    "emc_prob_norm": ([ctypes.c_int, _P, _I, _I, _P, _P, _P, _P, _D, _D, _P, _P, _P], None),
    "emc_merge": ([ctypes.c_int, _P, _I, _I, _I, _P, _P, _I, _P, _P, _P, _P, _D, _I, _P], None),
}


@functools.lru_cache(maxsize=1)
def library():
    """The loaded library, or None (with one warning saying why) when it cannot be had."""
    if os.environ.get("BEAMHUB_EMC_NATIVE", "1") == "0":
        return None
    return native.load(
        SOURCE, _SIGNATURES, flags=FLAGS, link_flags=LINK_FLAGS, what="EMC native kernels (numba loops used instead)"
    )


def available() -> bool:
    """True when the native kernels can be used on this machine."""
    return library() is not None


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.c_void_p)


class Photons(ctypes.Structure):
    """``photons_t`` of ``_native.c``: the lists of :func:`photon_lists` as the kernels take them."""

    _fields_ = [("nblocks", ctypes.c_int64), ("nb", ctypes.c_int64)] + [
        (name, ctypes.c_void_p) for name in ("seg", "row", "ones_ptr", "ones", "multi_ptr", "multi", "counts")
    ]

    @classmethod
    def of(cls, lists):
        """The structure pointing into ``lists`` (a :func:`photon_lists` tuple; keep it alive)."""
        nblocks, nb, *arrays = lists
        return cls(nblocks, nb, *(a.ctypes.data for a in arrays))


def photon_lists(
    counts, block: int | None = None, pad: int = 1, row_bytes: int = 128, all_first: bool = False
) -> tuple:
    """A sparse matrix of photon counts as the C kernels read it: Dragonfly's lists, cut by column.

    The columns are cut into blocks of ``block`` (None: one block of all).  Block ``b``
    visits the rows ``row[seg[b]:seg[b + 1]]``: with blocks, those with entries in the
    block (and every row in the first block with ``all_first``), fewer entries first, so
    that consecutive lists have the same length and the kernels' loop ends are predicted;
    with one block, every row in row order.  Visit ``l`` has its entries in
    ``ones[ones_ptr[l]:ones_ptr[l + 1]]``, the columns (ascending) holding exactly one
    photon (no value stored: most entries), padded to a multiple of ``pad`` entries, and in
    ``multi[multi_ptr[l]:multi_ptr[l + 1]]`` the other columns, with their counts in
    ``counts``.  With blocks, a column is the uint16 byte offset of its row from the
    block's first row (``row_bytes`` a row), the padding that of a zero row after the
    block's ``block`` rows; with one block, int32 column indices (no padding).

    Returns ``(nblocks, block, seg, row, ones_ptr, ones, multi_ptr, multi, counts)``: seg
    int64 (``nblocks + 1``), rows int32 (one per visit), pointers int64 (visits + 1), counts
    float32; :class:`Photons` points the kernels at them.  Computed once per problem, in
    memory and time that grow with the entries and rows (not blocks x rows).
    """
    counts = counts.tocsr()
    counts.sort_indices()
    nrows, ncols = counts.shape
    local = block is not None
    block = ncols if block is None else block
    if local and block * row_bytes > np.iinfo(np.uint16).max:
        raise ValueError(f"blocks of {block} rows of {row_bytes} bytes: offsets beyond uint16")
    nblocks = max(1, -(-ncols // block))
    rows = np.repeat(np.arange(nrows, dtype=np.int64), np.diff(counts.indptr))
    key = (counts.indices // block).astype(np.int64) * nrows + rows  # list b * nrows + d
    order = np.argsort(key, kind="stable")  # block-major, then row, then column (CSR order)
    key, cols, vals = key[order], counts.indices[order].astype(np.int64), counts.data[order]
    if local:
        cols = (cols - (key // nrows) * block) * row_bytes
        lists = key[np.flatnonzero(np.diff(key, prepend=-1))]  # the lists visited (key is sorted)
        if all_first:
            lists = np.union1d(lists, np.arange(nrows))
    else:
        lists = np.arange(nrows, dtype=np.int64)
    at_list = np.searchsorted(lists, key)  # each entry's list
    one = vals == 1.0
    n1 = np.bincount(at_list[one], minlength=len(lists))
    n1 = -(-n1 // pad) * pad
    nm = np.bincount(at_list[~one], minlength=len(lists))
    visit = np.arange(len(lists))
    if local:  # per block, fewer entries first
        visit = np.lexsort((lists, nm, n1, lists // nrows))
    rank = np.empty(len(lists), dtype=np.int64)
    rank[visit] = np.arange(len(lists))
    seg = np.zeros(nblocks + 1, dtype=np.int64)
    np.cumsum(np.bincount(lists // nrows, minlength=nblocks), out=seg[1:])
    out = [nblocks, block, seg, np.ascontiguousarray(lists[visit] % nrows, dtype=np.int32)]
    for sel, n in ((one, n1), (~one, nm)):
        k = at_list[sel]
        first = np.zeros(len(lists) + 1, dtype=np.int64)  # each list's first entry in k
        np.cumsum(np.bincount(k, minlength=len(lists)), out=first[1:])
        ptr = np.zeros(len(lists) + 1, dtype=np.int64)  # in visiting order, padded
        np.cumsum(n[visit], out=ptr[1:])
        at = ptr[rank[k]] + np.arange(len(k)) - first[k]
        col = np.full(ptr[-1], block * row_bytes if local else ncols, dtype=np.uint16 if local else np.int32)
        col[at] = cols[sel]
        out += [ptr, col]
    values = np.empty(len(at), dtype=np.float32)
    values[at] = vals[~one]
    out.append(values)
    return tuple(out)


def _c(a, dtype=np.float64) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


class NativeOps:
    """The EMC operations as the C kernels of ``_native.c`` (see :mod:`~beamhub.kernels.emc.ops`).

    Layout: ``L`` / ``P`` are tile-major, shape (ntiles, nd, CW) float32 with orientation
    ``r = tile * CW + c``, so each tile's (frames x 32) block is contiguous.
    """

    name = "native"

    def __init__(self):
        self.lib = library()
        if self.lib is None:
            raise RuntimeError("the C EMC kernels cannot be built on this machine")
        self.tile = int(self.lib.emc_tile_width())
        self.threads = threads_per_process()

    def prepare(self, detector, frames, rot, log_weights, weights, rank=0, size=1) -> Prepared:
        """This rank's share, padded to whole tiles (see :class:`~beamhub.kernels.emc.share.Prepared`)."""
        prep = prepare_share(np, self.tile, detector, frames, rot, log_weights, weights, rank, size)
        # the blocked lists are summed in four registers (padded to 4 with a zero row); the
        # merge's frame-by-frame form adds to memory rows (one block, in frame order)
        for name, lists in (
            ("lik", photon_lists(prep.lik, PIXEL_BLOCK, pad=4, row_bytes=4 * self.tile, all_first=True)),
            ("byframe", photon_lists(prep.counts)),
            ("bypixel", photon_lists(prep.counts.T, FRAME_BLOCK, pad=4, row_bytes=4 * self.tile)),
        ):
            prep.extra[name] = lists
            prep.extra[name + "_c"] = Photons.of(lists)
        prep.extra["corr"] = _c(prep.corr)
        return prep

    # ---------------------------------------------------------------- layout
    def to_layout(self, dense, fill: float = 0.0):
        """(nd, n) float32 as tile-major (ntiles, nd, CW), the last tile padded with ``fill``."""
        dense = np.asarray(dense, dtype=np.float32)
        nd, n = dense.shape
        nt = -(-n // self.tile)
        full = np.full((nd, nt * self.tile), fill, dtype=np.float32)
        full[:, :n] = dense
        return np.ascontiguousarray(full.reshape(nd, nt, self.tile).transpose(1, 0, 2))

    def from_layout(self, L, n: int):
        """The first ``n`` orientations of tile-major ``L`` as an (nd, n) array."""
        nt, nd, cw = L.shape
        return L.transpose(1, 0, 2).reshape(nd, nt * cw)[:, :n]

    # ---------------------------------------------------------------- expand + maximize
    def slice_model(self, model, rot, q, center: int, good=None):
        """Slices (nr, npix) float64 at the rotated pixels and their sums (nr,) over ``good``."""
        model, rot, q = _c(model), _c(rot), _c(q)
        nr, npix = len(rot), len(q)
        good = np.ones(npix, np.uint8) if good is None else _c(good, np.uint8)
        out, sums = np.empty((nr, npix)), np.empty(nr)
        with LAUNCH:
            self.lib.emc_slice(
                self.threads,
                _ptr(model),
                model.shape[0],
                nr,
                _ptr(rot),
                npix,
                _ptr(q),
                float(center),
                _ptr(good),
                _ptr(out),
                _ptr(sums),
            )
        return out, sums

    def likelihood(self, model, prep: Prepared, out=None):
        """``L = log w + K log W`` (ntiles, nd, CW) float32 and the slice sums (ntiles * CW,) float64.

        ``model``: (s, s, s) float64; the sums run over the likelihood (mask-0) pixels.
        ``out``: an ``L`` of an earlier call to overwrite (saves faulting in fresh pages).
        """
        cw = self.tile
        nchunk = len(prep.rot) // cw
        nd, ngood = prep.lik.shape
        model = _c(model)
        shape = (nchunk, nd, cw)
        L = out if out is not None and out.shape == shape else np.empty(shape, dtype=np.float32)
        sums = np.empty(nchunk * cw)
        with LAUNCH:
            self.lib.emc_likelihood(
                self.threads,
                _ptr(model),
                model.shape[0],
                nchunk,
                _ptr(prep.rot),
                len(prep.q),
                _ptr(prep.q),
                float(prep.center),
                _ptr(prep.good_pos),
                ngood,
                nd,
                ctypes.byref(prep.extra["lik_c"]),
                _ptr(prep.bias),
                _ptr(L),
                _ptr(sums),
            )
        return L, sums

    def prob_shift(self, L, num_valid: int, phi, sums):
        """Pass 1 (see :func:`~beamhub.kernels.emc.maximize.shift_rows`), on the tiles."""
        nchunk, nd, _ = L.shape
        phi, sums = _c(phi), _c(sums)
        top, arg = np.empty(nd), np.empty(nd, dtype=np.int64)
        with LAUNCH:
            self.lib.emc_prob_shift(
                self.threads, _ptr(L), nchunk, nd, int(num_valid), _ptr(phi), _ptr(sums), _ptr(top), _ptr(arg)
            )
        return top, arg

    def prob_exp(self, L, top, beta):
        """Pass 2 (see :func:`~beamhub.kernels.emc.maximize.exp_rows`), on the tiles."""
        nchunk, nd, _ = L.shape
        top, beta = _c(top), _c(beta)
        tot, sum_ev = np.empty(nd), np.empty(nd)
        with LAUNCH:
            self.lib.emc_prob_exp(
                self.threads, _ptr(L), nchunk, nd, _ptr(top), _ptr(beta), CUTOFF, _ptr(tot), _ptr(sum_ev)
            )
        return tot, sum_ev

    def prob_norm(self, L, tot, logw, sums, frame_scale):
        """Pass 3 (see :func:`~beamhub.kernels.emc.maximize.norm_rows`), on the tiles."""
        nchunk, nd, cw = L.shape
        tot, sums, fscale = _c(tot), _c(sums), _c(frame_scale)
        logw = _c(logw, np.float32)
        info, expected = np.empty(nd), np.empty(nd)
        den = np.zeros((self.threads, nchunk * cw))
        with LAUNCH:
            self.lib.emc_prob_norm(
                self.threads,
                _ptr(L),
                nchunk,
                nd,
                _ptr(tot),
                _ptr(logw),
                _ptr(sums),
                _ptr(fscale),
                CUTOFF,
                PROB_FLOOR,
                _ptr(info),
                _ptr(expected),
                _ptr(den),
            )
        return info, expected, den.sum(axis=0)

    # ---------------------------------------------------------------- compress
    def merge(self, P, prep: Prepared, den):
        """Σ over this rank's orientations of the splatted ``Σ_d P K / den_r / corr_t`` (s, s, s) float64.

        ``P``: (ntiles, nd, CW) float32 from the probability passes (0 at or below the
        floor); ``den``: (ntiles * CW,) float64, ``Σ_d φ_d P_dr``.
        """
        nchunk, nd, _ = P.shape
        size = prep.size
        acc = np.zeros((self.threads, size, size, size))
        den = _c(den)
        with LAUNCH:
            self.lib.emc_merge(
                self.threads,
                _ptr(P),
                nchunk,
                nd,
                prep.count,
                ctypes.byref(prep.extra["byframe_c"]),
                ctypes.byref(prep.extra["bypixel_c"]),
                prep.counts.shape[1],
                _ptr(den),
                _ptr(prep.extra["corr"]),
                _ptr(prep.rot),
                _ptr(prep.q),
                float(prep.center),
                size,
                _ptr(acc),
            )
        return acc.sum(axis=0)

    def merge_weights(self, rot, q, center: int, size: int):
        """Interpolation weight (s, s, s) float64 of every voxel with all of ``rot`` merged."""
        rot, q = _c(rot), _c(q)
        acc = np.zeros((self.threads, size, size, size))
        with LAUNCH:
            self.lib.emc_merge_weights(
                self.threads, len(rot), _ptr(rot), len(q), _ptr(q), float(center), size, _ptr(acc)
            )
        return acc.sum(axis=0)
