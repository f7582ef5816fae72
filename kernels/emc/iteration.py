"""The EMC iteration: expand, maximize, compress, with whichever operator set runs here.

:class:`EMC` holds one reconstruction's state (model, scale factors, this rank's share of
the orientations) and does pure numerical iterations through the operator set
:func:`~beamhub.kernels.emc.ops.ops_for` chose; :func:`~beamhub.kernels.emc.loop.run`
adds the files around them (outputs, EMC.log, checkpoints).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from beamhub.kernels.backend import get_xp, to_numpy
from beamhub.kernels.emc.compress import finish_model
from beamhub.kernels.emc.detector import Detector
from beamhub.kernels.emc.maximize import beta_schedule, beta_start, probabilities
from beamhub.kernels.emc.mpi import SerialComm
from beamhub.kernels.emc.ops import ops_for
from beamhub.kernels.emc.photons import Frames
from beamhub.kernels.emc.quaternions import rotation_matrices

__all__ = ["EMCSettings", "IterationFigures", "EMC", "random_start", "figures_dict"]

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
        Orientations expanded and merged at a time by the numba / whole-array sets (bounds
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
    n = size**3
    if fixed_seed:
        raw = np.random.RandomState(FIXED_SEED).randint(0, 2**32, size=n, dtype=np.uint64)
        u = raw.astype(np.float64) / 2.0**32
    else:
        u = np.random.default_rng(seed).random(n)
    return (u * high).reshape(size, size, size)


class EMC:
    """One EMC reconstruction on this rank's share of the work.

    Every rank keeps every frame and takes a contiguous share of the orientations (whole
    tiles of the operator set), whichever set runs; the ranks exchange per-frame figures,
    the per-orientation denominators and the merged volume.

    Parameters
    ----------
    detector : Detector
    frames : Frames
        All frames (every rank passes the same).
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
    ops : operator set, optional
        Default :func:`~beamhub.kernels.emc.ops.ops_for` ``(xp)`` (the fastest that runs here).
    """

    def __init__(
        self,
        detector: Detector,
        frames: Frames,
        quats,
        weights,
        settings=None,
        *,
        comm=None,
        model=None,
        scale=None,
        xp=None,
        ops=None,
    ):
        self.settings = settings or EMCSettings()
        self.comm = comm or SerialComm()
        self.xp = xp or get_xp()
        self.ops = ops or ops_for(self.xp, chunk=self.settings.chunk_size)
        # all ranks must share one tile width (the split of the orientations)
        if self.comm.allreduce_scalar(float(self.ops.tile)) != self.ops.tile * self.comm.size:
            raise RuntimeError("MPI ranks chose different EMC kernels; set BEAMHUB_EMC_KERNELS alike")
        self.detector = detector
        self.frames = frames
        self.num_data = frames.num_data
        self.num_rot = len(quats)
        self.mean_count = float(frames.count.mean()) if frames.num_data else 0.0
        self.quats = np.asarray(quats, dtype=np.float64)
        self.log_weights = np.log(np.asarray(weights, dtype=np.float64))
        self.weights = np.asarray(weights, dtype=np.float64)
        s = self.settings
        self.beta0 = beta_start(frames.count, self.mean_count, s.beta, s.need_scaling)
        self.scale = np.ones(self.num_data) if scale is None else np.asarray(scale, np.float64)
        self.scale_given = scale is not None
        if model is None:
            model = (
                None
                if self.comm.rank
                else random_start(
                    detector.size, 2.0 * self.mean_count / max(detector.rel_num_pix, 1), s.fixed_seed, s.seed
                )
            )
            model = self.comm.bcast(model)
        self.model = np.asarray(model, dtype=np.float64)
        self.iteration = 0
        self._rot = rotation_matrices(self.quats)
        self.prep = self.ops.prepare(
            detector, frames, self._rot, self.log_weights, self.weights, self.comm.rank, self.comm.size
        )
        self._weights_all = None
        self._buffer = None

    # ------------------------------------------------------------------ one iteration
    def iterate(self) -> IterationFigures:
        """Run one Expand-Maximize-Compress iteration; returns its figures.

        ``figures.per_frame`` holds the per-frame ``orientations``, ``likelihood``,
        ``mutual_info`` (and ``scale``) of all frames, the same on every rank.
        """
        t0 = time.perf_counter()
        xp, s, det, comm, ops, prep = self.xp, self.settings, self.detector, self.comm, self.ops, self.prep
        it = self.iteration + 1
        nr, nd = self.num_rot, self.num_data
        model = xp.asarray(self.model)
        beta = beta_schedule(self.beta0, it, s.beta_factor, s.beta_jump, s.beta_period)
        scaled = s.need_scaling and (it > 1 or self.scale_given)

        # Expand + Maximize: L_dr = log w_r + Σ_t K log W, then the annealed probabilities
        L, sums = ops.likelihood(model, prep, out=self._buffer)  # the frames x orientations matrix
        rescale = self.mean_count / comm.allreduce_scalar(float(xp.sum(prep.w * sums)))
        phi = self.scale if scaled else np.full(nd, rescale)
        frame_scale = self.scale if s.need_scaling else np.ones(nd)
        prob = probabilities(
            ops,
            L,
            beta=beta,
            logw=prep.logw,
            sums=sums,
            phi=phi,
            frame_scale=frame_scale,
            sum_log_fact=self.frames.sum_log_fact,
            num_valid=prep.count,
            col0=prep.col0,
            comm=comm,
        )

        # Compress: probability-weighted photons of this rank's orientations, merged
        acc = comm.allreduce_sum(ops.merge(L, prep, prob.den))
        self._buffer = L  # reused by the next iteration
        den_all = np.zeros(nr)
        den_all[prep.col0 : prep.col0 + prep.count] = to_numpy(prob.den)[: prep.count]
        active = comm.allreduce_sum(den_all) > 0
        wacc = self._merge_weights()
        if not bool(active.all()):  # orientations no frame chose add no weight
            idle = np.flatnonzero(~active)
            wacc = wacc - xp.asarray(ops.merge_weights(xp.asarray(self._rot[idle]), prep.q, det.center, det.size))
        new, weight = finish_model(xp.asarray(acc), wacc, s.friedel)

        # Scale factors (Dragonfly: count_d / Σ_r P_dr rescale Σ_t W_rt, then mean 1)
        mean_scale = 1.0
        if s.need_scaling and s.update_scale:
            expected = rescale * prob.expected
            full = self.frames.count / np.where(expected > 0, expected, 1.0)
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
        per_frame = {"orientations": prob.best, "likelihood": prob.likelihood, "mutual_info": prob.mutual_info}
        if s.need_scaling:
            per_frame["scale"] = self.scale.copy()
        elapsed = time.perf_counter() - t0
        return IterationFigures(
            it,
            elapsed,
            rms,
            float(np.sum(prob.mutual_info)) / total,
            float(np.sum(prob.likelihood)) / total,
            nr,
            float(np.sum(beta)) / total,
            per_frame,
        )

    def _merge_weights(self):
        """Interpolation weight of every voxel with all orientations merged (computed once, split over ranks)."""
        if self._weights_all is None:
            p = self.prep
            mine = self.ops.merge_weights(p.rot[: p.count], p.q, p.center, p.size)
            self._weights_all = self.xp.asarray(self.comm.allreduce_sum(mine))
        return self._weights_all

    def state(self) -> dict:
        """Everything a resumed run needs (model, scale, iteration), as numpy arrays."""
        return {"intens": self.model, "scale": self.scale, "iteration": np.int64(self.iteration)}

    def fingerprint(self) -> dict:
        """Sizes that must match for a checkpoint to belong to this problem."""
        return {
            "num_data": self.num_data,
            "num_rot": self.num_rot,
            "size": self.detector.size,
            "num_pix": self.detector.num_pix,
            "need_scaling": int(self.settings.need_scaling),
        }


def figures_dict(fig: IterationFigures) -> dict:
    """The scalar figures of an iteration as a plain dict (for JSON or tables)."""
    d = asdict(fig)
    d.pop("per_frame", None)
    return d
