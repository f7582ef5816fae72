"""The EMC iteration: expand, maximize, compress; figures, checkpoints, resume and a callback.

:class:`EMC` holds one reconstruction's state (model, scale factors, this rank's
frames) and does pure numerical iterations.  :func:`run` adds the files a
Dragonfly user expects — ``output_NNN.h5`` every iteration, the ``EMC.log`` table —
and a checkpoint after every iteration, from which ``resume=True`` continues.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from beamhub.kernels.backend import cpu_workers, get_xp, to_numpy
from beamhub.kernels.emc import _fused, _native
from beamhub.kernels.emc.compress import finish_model, merge_values, merge_weights, photon_sums
from beamhub.kernels.emc.detector import Detector
from beamhub.kernels.emc.expand import expand_log, good_positions
from beamhub.kernels.emc.maximize import (CUTOFF, PROB_FLOOR, beta_schedule, beta_start, photon_log_term,
                                          probabilities)
from beamhub.kernels.emc.mpi import SerialComm, frame_blocks
from beamhub.kernels.emc.photons import Frames
from beamhub.kernels.emc.quaternions import rotation_matrices
from beamhub.kernels.io.atomic import InputFormatError

__all__ = ["EMCSettings", "IterationFigures", "EMC", "run", "random_start", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "emc_checkpoint.h5"
FIXED_SEED = 0x5EED


@dataclass
class EMCSettings:
    """Reconstruction parameters (Dragonfly's ``[emc]`` meanings; see docs/emc.md).

    Attributes
    ----------
    beta : float or None
        Starting inverse temperature; None = Dragonfly's ``auto`` rule.
    beta_factor : float
        Constant multiplier of β.
    beta_jump, beta_period : float, int
        β multiplied by ``beta_jump`` every ``beta_period`` iterations.
    need_scaling : bool
        Fit a per-frame scale (incident fluence) factor.
    update_scale : bool
        Update the scale factors each iteration (False keeps the starting ones).
    alpha : float
        Damping: new model = α·old + (1−α)·update.
    friedel : bool
        Friedel-symmetrise the merged model (Dragonfly always does in 3-D).
    chunk_size : int
        Orientations expanded and scored at a time on the numba / whole-array paths (bounds
        their temporaries: ~ nd·chunk float32); the C kernels always use tiles of 32.
    fixed_seed : bool
        Random start from Dragonfly's fixed seed (MT19937, 0x5EED) instead of fresh entropy.
    seed : int or None
        Seed for the random start when not ``fixed_seed``.
    """

    beta: float | None = None
    beta_factor: float = 1.0
    beta_jump: float = 1.0
    beta_period: int = 100
    need_scaling: bool = False
    update_scale: bool = True
    alpha: float = 0.0
    friedel: bool = True
    chunk_size: int = 256
    fixed_seed: bool = False
    seed: int | None = None


@dataclass
class IterationFigures:
    """What one iteration reports (the EMC.log columns).

    ``rms_change`` of the model, ``info_rate`` (mean mutual information, nats),
    ``likelihood`` (mean log-likelihood), ``beta`` (mean β), ``time`` in seconds.
    """

    iteration: int
    time: float
    rms_change: float
    info_rate: float
    likelihood: float
    num_rot: int
    beta: float
    per_frame: dict = field(default_factory=dict, repr=False)


def random_start(size: int, high: float, fixed_seed: bool = False, seed=None) -> np.ndarray:
    """Dragonfly's random start: every voxel uniform in ``[0, high)``, shape (size,)*3, float64.

    With ``fixed_seed`` the draws come from MT19937 seeded with 0x5EED (GSL's default
    generator and Dragonfly's seed; 32-bit outputs / 2^32), filled in C order.
    """
    n = size ** 3
    if fixed_seed:
        raw = np.random.RandomState(FIXED_SEED).randint(0, 2 ** 32, size=n, dtype=np.uint64)
        u = raw.astype(np.float64) / 2.0 ** 32
    else:
        u = np.random.default_rng(seed).random(n)
    return (u * high).reshape(size, size, size)


class EMC:
    """One EMC reconstruction on this rank's share of the work.

    With the C kernels (numpy backend, a compiler) each rank keeps every frame and takes a
    share of the orientations; otherwise each rank keeps a contiguous block of frames.

    Parameters
    ----------
    detector : Detector
    frames : Frames
        All frames (every rank passes the same; each keeps what its share needs).
    quats : ndarray, shape (nr, 4)
    weights : ndarray, shape (nr,)
    settings : EMCSettings
    comm : SerialComm or MPIComm, optional
    model : ndarray, shape (s, s, s), optional
        Start model (default: Dragonfly's random start).
    scale : ndarray, shape (num_data,), optional
        Starting per-frame scale factors (default 1).
    xp : module, optional
        numpy or cupy (default: the process backend).
    """

    def __init__(self, detector: Detector, frames: Frames, quats, weights, settings=None, *,
                 comm=None, model=None, scale=None, xp=None):
        self.settings = settings or EMCSettings()
        self.comm = comm or SerialComm()
        self.xp = xp or get_xp()
        self.detector = detector
        self.num_data = frames.num_data
        self.num_rot = len(quats)
        self.mean_count = float(frames.count.mean()) if frames.num_data else 0.0
        self.quats = np.asarray(quats, dtype=np.float64)
        self.log_weights = np.log(np.asarray(weights, dtype=np.float64))
        self.weights = np.asarray(weights, dtype=np.float64)
        # the C kernels split the orientations over ranks (every rank reads all frames), the
        # whole-array kernels split the frames; all ranks must take the same path
        native = self.xp is np and _native.available()
        self.native = self.comm.allreduce_scalar(float(native)) == self.comm.size
        self.frames_split = not self.native and self.comm.size > 1
        block = frame_blocks(frames.num_data, self.comm.size if self.frames_split else 1)[
            self.comm.rank if self.frames_split else 0]
        self.block = block
        self.frames = frames.subset(block)
        s = self.settings
        self.beta0 = beta_start(self.frames.count, self.mean_count, s.beta, s.need_scaling)
        self.scale = (np.ones(self.num_data) if scale is None else np.asarray(scale, np.float64))
        self.scale_given = scale is not None
        if model is None:
            model = None if self.comm.rank else random_start(
                detector.size, 2.0 * self.mean_count / max(detector.rel_num_pix, 1),
                s.fixed_seed, s.seed)
            model = self.comm.bcast(model)
        self.model = np.asarray(model, dtype=np.float64)
        self.iteration = 0
        self._prepare_arrays()

    def _prepare_arrays(self):
        xp, det = self.xp, self.detector
        good_cols = np.flatnonzero(det.good)
        counts = self.frames.counts
        lik = self.frames.good_counts[:, good_cols].tocsr()
        counts_t = counts.T.tocsr()
        for m in (lik, counts_t):
            m.sort_indices()
        if xp is np:
            self._lik, self._counts, self._counts_t = lik, counts, counts_t
        else:
            import cupyx.scipy.sparse as csp  # noqa: PLC0415

            self._lik, self._counts = csp.csr_matrix(lik), csp.csr_matrix(counts)
            self._counts_t = csp.csr_matrix(counts_t)
        self._good_cols = xp.asarray(good_cols)
        self._q = xp.asarray(det.q)
        self._good = xp.asarray(det.good)
        self._corr = xp.asarray(det.corr)
        self._rot = rotation_matrices(self.quats)
        self._rot_x = xp.asarray(self._rot)

    # ------------------------------------------------------------------ one iteration
    def iterate(self) -> IterationFigures:
        """Run one Expand-Maximize-Compress iteration; returns its figures.

        ``figures.per_frame`` holds, on rank 0, the per-frame ``orientations``,
        ``likelihood``, ``mutual_info`` (and ``scale``) of all frames.
        """
        t0 = time.perf_counter()
        xp, s, det, comm = self.xp, self.settings, self.detector, self.comm
        it = self.iteration + 1
        nr, nd = self.num_rot, self.frames.num_data
        model = xp.asarray(self.model)
        beta = beta_schedule(self.beta0, it, s.beta_factor, s.beta_jump, s.beta_period)
        scaled = s.need_scaling and (it > 1 or self.scale_given)
        local_scale = self.scale[self.block]
        if self.native:
            acc, active, rescale, expected, (best, like, info) = self._step_native(
                model, beta, scaled, local_scale)
        else:
            acc, active, rescale, expected, (best, like, info) = self._step_arrays(
                model, beta, scaled, local_scale)
        wacc = self._merge_weights()
        if not bool(active.all()):  # orientations no frame chose add no weight
            idle = xp.flatnonzero(~active)
            wacc = wacc - merge_weights(self._rot_x[idle], self._q, det.center, det.size, xp=xp)
        new, weight = finish_model(acc, wacc, s.friedel)

        # Scale factors (Dragonfly: count_d / Σ_r P_dr rescale Σ_t W_rt, then mean 1)
        mean_scale = 1.0
        if s.need_scaling and s.update_scale:
            expected = rescale * to_numpy(expected)
            local = self.frames.count / np.where(expected > 0, expected, 1.0)
            full = np.zeros(self.num_data)
            full[self.block] = local
            full = comm.allreduce_sum(full) if self.frames_split else full
            mean_scale = float(full.mean()) if self.num_data else 1.0
            self.scale = full / mean_scale
            new = new * mean_scale
        if s.alpha:
            new = s.alpha * model + (1.0 - s.alpha) * new
        rms = float(xp.sqrt(xp.mean((new - model) ** 2))) * (mean_scale if s.need_scaling else 1.0)
        self.model = to_numpy(new)
        self.inter_weight = to_numpy(weight)
        self.iteration = it

        total = max(self.num_data, 1)
        if self.frames_split:  # per-frame figures of this rank's frames: add / gather them
            add, gather = comm.allreduce_scalar, comm.gather_rows
        else:  # every rank holds every frame's figures
            add, gather = float, to_numpy
        like_mean = add(float(xp.sum(like))) / total
        info_mean = add(float(xp.sum(info))) / total
        beta_mean = add(float(np.sum(beta))) / total
        per_frame = {
            "orientations": gather(best),
            "likelihood": gather(like),
            "mutual_info": gather(info),
        }
        if s.need_scaling:
            per_frame["scale"] = self.scale.copy()
        elapsed = time.perf_counter() - t0
        return IterationFigures(it, elapsed, rms, info_mean, like_mean, nr, beta_mean, per_frame)

    def _step_arrays(self, model, beta, scaled, local_scale):
        """Expand, maximize and the merge sums with the whole-array kernels (numpy, cupy, numba).

        Returns the merged values (summed over ranks), the active orientations, the photon
        rescale factor, each frame's expected photons ``Σ_r P_dr Σ_t W_rt`` and the per-frame
        ``(best, likelihood, mutual_info)``.
        """
        xp, s, det, comm = self.xp, self.settings, self.detector, self.comm
        chunk = max(1, int(s.chunk_size))
        nr, nd = self.num_rot, self.frames.num_data

        # Expand + Maximize: L_dr = log w_r + Σ_t K log W (the φ_d Σ W term comes later)
        loglik = xp.empty((nd, nr), dtype=xp.float32)
        sums = xp.empty(nr, dtype=xp.float64)
        logw_x = xp.asarray(self.log_weights, dtype=xp.float32)
        for a in range(0, nr, chunk):
            b = min(nr, a + chunk)
            logw, sums[a:b] = expand_log(model, self._rot_x[a:b], self._q, det.center, self._good)
            photon_log_term(self._lik, logw, out=loglik, bias=logw_x[a:b], col0=a)
        rescale = self.mean_count / float(xp.sum(xp.asarray(self.weights) * sums))
        phi = local_scale if scaled else np.full(nd, rescale)
        figures = probabilities(loglik, beta, self.log_weights, self.frames.sum_log_fact,
                                phi=xp.asarray(phi), slice_sums=sums)
        prob = loglik
        expected = prob @ sums.astype(xp.float32) if s.need_scaling else None

        # Compress: probability-weighted photons per orientation, merged into the model
        frame_scale = xp.asarray(local_scale if s.need_scaling else np.ones(nd))
        copies = _fused.compiled().num_threads() if (xp is np and _fused.available()) else 1
        acc = xp.zeros((copies,) + self.model.shape)
        active = xp.zeros(nr, dtype=bool)
        for ci, a in enumerate(range(0, nr, chunk)):
            b = min(nr, a + chunk)
            num, den = photon_sums(self._counts, prob, frame_scale, cols=(a, b), counts_t=self._counts_t)
            num = comm.allreduce_sum(num)
            den = comm.allreduce_sum(den)
            ok = den > 0
            active[a:b] = ok
            if ci % comm.size != comm.rank:
                continue
            merge_values(acc, num, den, self._corr, ok, self._rot_x[a:b], self._q, det.center)
        acc = comm.allreduce_sum(acc.sum(axis=0))
        return acc, active, rescale, expected, figures

    def _step_native(self, model, beta, scaled, local_scale):
        """The same step with the C kernels (see ``_native.c``), tile-major and in place.

        Each rank takes a contiguous share of the orientation tiles for every frame (as
        Dragonfly splits its orientations): expand, both photon products and the merge
        are divided, not repeated; the ranks exchange only per-frame figures (a few
        arrays of length num_data), the per-orientation denominators and the merged volume.
        """
        s, det, comm = self.settings, self.detector, self.comm
        nr, nd = self.num_rot, self.frames.num_data
        threads = _fused.threads_per_process(cpu_workers())
        nat = self._native_arrays()
        L, sums = _native.likelihood(threads, model, nat["rot"], det.q, det.center, nat["good_pos"],
                                     self._lik, nat["bias"])
        rescale = self.mean_count / comm.allreduce_scalar(float(np.sum(nat["w"] * sums)))
        phi = local_scale if scaled else np.full(nd, rescale)
        frame_scale = local_scale if s.need_scaling else np.ones(nd)
        best, sum_ev, tot, info, expected, den = _native.probabilities(
            threads, L, nat["count"], nat["col0"], beta, nat["logw"], phi, sums, frame_scale,
            CUTOFF, PROB_FLOOR, comm)
        like = sum_ev / tot - self.frames.sum_log_fact
        acc = _native.merge(threads, L, nat["count"], self._counts, den, det.corr, nat["rot"], det.q,
                            det.center, det.size)
        acc = comm.allreduce_sum(acc)
        den_all = np.zeros(nr)
        den_all[nat["col0"]:nat["col0"] + nat["count"]] = den[:nat["count"]]
        active = comm.allreduce_sum(den_all) > 0
        return acc, active, rescale, expected, (best, like, info)

    def _native_arrays(self) -> dict:
        """This rank's tiles of rotations, priors and weights, padded for the C kernels (once)."""
        if getattr(self, "_native_cache", None) is None:
            cw = _native.tile_width()
            tiles = np.array_split(np.arange(-(-self.num_rot // cw)), self.comm.size)[self.comm.rank]
            a = int(tiles[0]) * cw if len(tiles) else 0
            b = min(self.num_rot, (int(tiles[-1]) + 1) * cw) if len(tiles) else 0
            n = len(tiles)
            self._native_cache = {
                "col0": a, "count": b - a,
                "rot": _native.padded(self._rot[a:b], n, 0.0),
                # padding orientations: a log-prior no frame can prefer (never probable)
                "bias": _native.padded(self.log_weights[a:b], n, -1e30, np.float32),
                "logw": _native.padded(self.log_weights[a:b], n, 0.0, np.float32),
                "w": _native.padded(self.weights[a:b], n, 0.0),
                "good_pos": good_positions(self.detector.good, np.int32),
            }
        return self._native_cache

    def _merge_weights(self):
        """Interpolation weight of every voxel with all orientations merged (computed once)."""
        if getattr(self, "_weights_all", None) is None:
            self._weights_all = merge_weights(self._rot_x, self._q, self.detector.center,
                                              self.detector.size, xp=self.xp)
        return self._weights_all

    def state(self) -> dict:
        """Everything a resumed run needs (model, scale, iteration), as numpy arrays."""
        return {"intens": self.model, "scale": self.scale,
                "iteration": np.int64(self.iteration)}

    def fingerprint(self) -> dict:
        """Sizes that must match for a checkpoint to belong to this problem."""
        return {"num_data": self.num_data, "num_rot": self.num_rot, "size": self.detector.size,
                "num_pix": self.detector.num_pix, "need_scaling": int(self.settings.need_scaling)}


# ---------------------------------------------------------------------- files around the loop

def _backup_log(path: Path) -> None:
    """Keep an existing log as ``.NAME.bak`` (``.bak1``, ... if taken), as Dragonfly does."""
    if not path.exists():
        return
    n = 0
    while True:
        bak = path.with_name(f".{path.name}.bak{n if n else ''}")
        if not bak.exists():
            shutil.copy2(path, bak)
            return
        n += 1


def _append_text(path: Path, text: str) -> None:
    """Append by rewriting atomically (a killed run never leaves a torn log line)."""
    from beamhub.kernels.io.atomic import atomic_output  # noqa: PLC0415

    old = path.read_text() if path.exists() else ""
    with atomic_output(path) as tmp:
        tmp.write_text(old + text)


def load_checkpoint(folder: Path, fingerprint: dict) -> dict:
    """Read ``emc_checkpoint.h5`` and check it belongs to this problem."""
    import h5py  # noqa: PLC0415

    path = folder / CHECKPOINT_NAME
    if not path.is_file():
        raise InputFormatError(f"{str(path)!r}: no checkpoint to resume from (run without --resume)")
    with h5py.File(path, "r") as f:
        stored = {k: int(f.attrs[k]) for k in fingerprint if k in f.attrs}
        wrong = {k: (stored.get(k), v) for k, v in fingerprint.items() if stored.get(k) != v}
        if wrong:
            detail = ", ".join(f"{k}: checkpoint {a}, now {b}" for k, (a, b) in wrong.items())
            raise InputFormatError(f"{str(path)!r} belongs to a different problem ({detail})")
        return {"intens": f["intens"][()], "scale": f["scale"][()],
                "iteration": int(f["iteration"][()])}


def run(emc: EMC, iterations: int, *, output_folder: str | os.PathLike | None = None,
        log_file: str | os.PathLike | None = None, resume: bool = False,
        callback: Callable | None = None, progress: bool | None = None, write_start: bool = True):
    """Iterate ``emc`` up to iteration number ``iterations``, writing Dragonfly's outputs.

    Parameters
    ----------
    emc : EMC
    iterations : int
        Last iteration number to reach (a resumed run continues from its checkpoint).
    output_folder : path, optional
        Where ``output_NNN.h5`` and ``emc_checkpoint.h5`` go (no files when None).
    log_file : path, optional
        EMC.log path (none when None).
    resume : bool
        Continue from ``output_folder/emc_checkpoint.h5``.
    callback : callable, optional
        ``callback(iteration, model, figures)`` after every iteration (rank 0 only), e.g. a
        notebook's live view; ``model`` is a (s, s, s) float64 numpy array.
    progress : bool, optional
        Print the per-iteration figures to stderr (default: when stderr is a terminal).

    Returns
    -------
    list of IterationFigures
    """
    from beamhub.kernels.io import dragonfly as dio  # noqa: PLC0415

    rank0 = emc.comm.rank == 0
    folder = Path(output_folder) if output_folder is not None else None
    log = Path(log_file) if log_file is not None else None
    if progress is None:
        progress = sys.stderr.isatty()
    if resume:
        if folder is None:
            raise InputFormatError("resume needs an output folder holding the checkpoint")
        state = emc.comm.bcast(load_checkpoint(folder, emc.fingerprint()) if rank0 else None)
        emc.model = np.asarray(state["intens"], dtype=np.float64)
        emc.scale = np.asarray(state["scale"], dtype=np.float64)
        emc.iteration = state["iteration"]
        emc.scale_given = emc.scale_given or emc.iteration > 0
    elif rank0:
        if folder is not None and write_start:
            dio.write_output(folder / "output_000.h5", {"intens": emc.model[None]})
        if log is not None:
            _backup_log(log)
            threads = _fused.compiled().num_threads() if _fused.available() else cpu_workers()
            with_log = dio.format_log_header(
                num_data=emc.num_data, mean_count=emc.mean_count, num_rot=emc.num_rot,
                rel_num_pix=emc.detector.rel_num_pix, num_pix=emc.detector.num_pix,
                size=emc.detector.size, num_threads=threads, num_proc=emc.comm.size,
                alpha=emc.settings.alpha, beta=float(emc.beta0[0]) if len(emc.beta0) else 0.0,
                need_scaling=emc.settings.need_scaling)
            from beamhub.kernels.io.atomic import atomic_output  # noqa: PLC0415

            with atomic_output(log) as tmp:
                tmp.write_text(with_log)
    history = []
    while emc.iteration < iterations:
        fig = emc.iterate()
        if rank0:
            t_write = time.perf_counter()
            if folder is not None:
                data = {"intens": emc.model[None], "inter_weight": emc.inter_weight[None],
                        "orientations": fig.per_frame["orientations"].astype(np.int32),
                        "mutual_info": fig.per_frame["mutual_info"],
                        "likelihood": fig.per_frame["likelihood"]}
                if "scale" in fig.per_frame:
                    data["scale"] = fig.per_frame["scale"]
                dio.write_output(folder / f"output_{fig.iteration:03d}.h5", data)
            fig.time += time.perf_counter() - t_write
            if log is not None:
                _append_text(log, dio.format_log_row(fig.iteration, fig.time, fig.rms_change,
                                                     fig.info_rate, fig.likelihood, fig.num_rot,
                                                     fig.beta))
            if folder is not None:  # last: a checkpoint implies the outputs above exist
                dio.write_output(folder / CHECKPOINT_NAME, emc.state(), attrs=emc.fingerprint())
            if progress:
                print(f"iter {fig.iteration:4d}  {fig.time:7.2f} s  rms {fig.rms_change:.4e}  "
                      f"info {fig.info_rate:.4f}  loglik {fig.likelihood:.6e}  beta {fig.beta:.4f}",
                      file=sys.stderr, flush=True)
            if callback is not None:
                callback(fig.iteration, emc.model, fig)
        history.append(fig)
    return history


def figures_dict(fig: IterationFigures) -> dict:
    """The scalar figures of an iteration as a plain dict (for JSON or tables)."""
    d = asdict(fig)
    d.pop("per_frame", None)
    return d
