"""``phase()``: iterative phase retrieval from a measured intensity, many starts, ranked and aligned."""

from __future__ import annotations

import heapq
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from beamhub.kernels import backend
from beamhub.kernels.phasing.align import center, register
from beamhub.kernels.phasing.projections import (
    MODES,
    RealFFT,
    ops_for,
    update_coefficients,
)
from beamhub.kernels.phasing.prtf import prtf as compute_prtf
from beamhub.kernels.phasing.support import ShrinkWrap, centered_ball, shrinkwrap_support

__all__ = ["ALGORITHMS", "PhasingResult", "Step", "phase"]

ALGORITHMS = ("er", "hio", "raar")

#: Solutions kept for alignment and the PRTF when fewer images are asked for.
PRTF_SOLUTIONS = 8


@dataclass(frozen=True)
class Step:
    """One stage of a phasing run: ``iterations`` of algorithm ``name``.

    Parameters
    ----------
    name : {"er", "hio", "raar"}
        Error reduction, hybrid input-output (Fienup 1982) or relaxed averaged
        alternating reflections (Luke 2005).
    iterations : int
        Number of iterations (>= 1).
    beta_init, beta_final : float
        Feedback parameter in (0, 1], ramped linearly from ``beta_init`` at the
        first iteration to ``beta_final`` at the last (ignored by ER).
        ``beta_final`` defaults to ``beta_init``.
    """

    name: str
    iterations: int
    beta_init: float = 0.9
    beta_final: float | None = None

    def __post_init__(self):
        if self.name not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.name!r}; choose one of {', '.join(ALGORITHMS)}")
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {self.iterations!r}")
        for label, beta in (("beta_init", self.beta_init), ("beta_final", self.beta_final)):
            if beta is not None and not 0.0 < beta <= 1.0:
                raise ValueError(f"{label} must be in (0, 1], got {beta!r}")

    def betas(self) -> np.ndarray:
        """``(iterations,)`` float64: the beta used at each iteration."""
        final = self.beta_init if self.beta_final is None else self.beta_final
        return np.linspace(self.beta_init, final, self.iterations)

    @classmethod
    def coerce(cls, spec) -> Step:
        """A Step from a Step, a tuple, or a mapping
        ``{name, number_of_iterations|iterations, beta_init, beta_final}``."""
        if isinstance(spec, Step):
            return spec
        if isinstance(spec, Mapping):
            spec = dict(spec)
            iterations = spec.pop("number_of_iterations", None) or spec.pop("iterations")
            return cls(name=spec.pop("name"), iterations=iterations, **spec)
        return cls(*spec)


@dataclass
class PhasingResult:
    """What :func:`phase` returns; all arrays are numpy.

    ``shape`` is the shape of the intensity (2 or 3 axes), ``K`` the number of
    images asked for, ``S`` the number of random starts and ``T`` the total
    number of iterations per start.

    Attributes
    ----------
    images : (K, *shape) complex ndarray
        The K best solutions, best first, after the support projection; the
        first is centred in the box (centre of mass at ``n // 2``), the others
        are aligned to it (translation, twin, global phase).  Same scale as the
        data: ``|fftn(image)|**2`` approximates the intensity.
    supports : (K, *shape) bool ndarray
        Final support of each image, moved with it.
    average : (*shape) complex ndarray
        Mean of ``images``.
    scores : (S,) float64 ndarray
        Fourier error of every start's final image, ascending:
        ``sqrt(sum((|F| - sqrt(I))**2) / sum(I))`` over known pixels.
    starts : (S,) int ndarray
        Index of the random start behind each score.
    errors : (S, T) float64 ndarray
        Fourier error of the iterate at every iteration, rows in score order
        (with ``real_fft``, against the Friedel-averaged amplitudes).
    prtf : (R,) float64 ndarray
        Phase retrieval transfer function over the best ``max(K, min(S, 8))``
        aligned solutions, per Fourier shell; NaN where a shell has no known pixel.
    prtf_radius : (R,) float64 ndarray
        Shell radii in Fourier pixels.
    info : dict
        How the run was made: ``backend``, ``ops`` (the operator set),
        ``dtype``, ``constraint``, ``iterations`` (per start), ``real_fft``,
        ``seconds_per_iteration`` (wall time of the iteration loops, averaged
        over all iterations of all starts) and ``setup_seconds_per_start``
        (the rest of a start: starting spectrum, first inverse FFT, final
        support projection; paid once per start, not per iteration).
    """

    images: np.ndarray
    supports: np.ndarray
    average: np.ndarray
    scores: np.ndarray
    starts: np.ndarray
    errors: np.ndarray
    prtf: np.ndarray
    prtf_radius: np.ndarray
    info: dict = field(default_factory=dict)


def phase(
    intensity,
    *,
    support,
    algorithms: Sequence,
    n_starts: int = 1,
    n_best: int = 1,
    mask=None,
    constraint: str = "positive",
    shrinkwrap: ShrinkWrap | None = None,
    seed=None,
    dtype=np.complex64,
    centered: bool = True,
    real_fft: bool | None = None,
    backend_name: str | None = None,
    progress: bool = False,
    callback=None,
    callback_every: int = 10,
) -> PhasingResult:
    """Recover an object from its diffracted intensity by iterative phase retrieval.

    Each of ``n_starts`` independent starts begins from random Fourier phases
    and runs the ``algorithms`` in order; the final images are ranked by
    Fourier error, the best aligned to each other and averaged.

    Parameters
    ----------
    intensity : (N, N) or (N, N, N) real array (any shape of 2 or 3 axes)
        Measured intensity, photons.  Negative or non-finite values are unknown
        (Dragonfly writes -1 there) and left free by the modulus projection.
    support : float or bool array of the intensity's shape
        Diameter in pixels of a centred disc/ball, or an explicit support.
        With ``shrinkwrap`` it is the initial support.
    algorithms : sequence of Step, mapping or tuple
        Stages run in order, e.g. ``[Step("hio", 500, 0.9), Step("er", 100)]``
        or ``[{"name": "hio", "number_of_iterations": 500, "beta_init": 0.9}]``.
    n_starts : int
        Independent random starts.
    n_best : int
        Number of best solutions returned in ``images`` (<= ``n_starts``).
    mask : bool array of the intensity's shape, optional
        True where the intensity is unknown (beamstop, gaps), in the same
        (centred or not) layout as ``intensity``.
    constraint : {"positive", "real", "none"}
        Real-space constraint inside the support.
    shrinkwrap : ShrinkWrap or None
        None keeps the support static.
    seed : int, numpy Generator or None
        Seed of the random starts; the same seed gives the same result.
    dtype : complex64 or complex128
        Working precision.  complex64 (default) halves memory traffic.
    centered : bool
        True when q = 0 is at ``n // 2`` on every axis (Dragonfly, most
        detectors merged into a volume); False for FFT order.
    real_fft : bool or None
        Keep the iterate real and use real-to-complex FFTs: half the FFT work
        and memory.  Needs ``constraint`` "real" or "positive"; the measured
        amplitudes are first averaged with their Friedel mates ``q`` and
        ``-q`` (equal for a real object).  None (default): whenever the
        constraint allows it.
    backend_name : {"numpy", "cupy", "auto"} or None
        Where to compute; None uses ``BEAMHUB_BACKEND``.
    progress : bool
        Show a progress bar on stderr.
    callback : callable or None
        ``callback(iteration, image, figures)`` every ``callback_every`` iterations and after
        each start's last one, e.g. a :class:`beamhub.kernels.view.Monitor` watching the run
        live.  ``iteration`` counts over all starts; ``image`` is the current real-space
        iterate as a numpy array of the intensity's shape (the object centred); ``figures`` holds
        ``start``, ``fourier_error``, ``algorithm`` and ``beta``.
    callback_every : int
        Iterations between two callback calls.

    Returns
    -------
    PhasingResult

    Examples
    --------
    >>> from beamhub.kernels.sim import simulate_cdi, random_object
    >>> data = simulate_cdi(random_object((16, 16), seed=1), oversampling=4, seed=2)
    >>> res = phase(data.intensity, support=20, algorithms=[Step("hio", 200), Step("er", 50)],
    ...             n_starts=4, seed=0)
    >>> res.images.shape, res.scores.shape
    ((1, 64, 64), (4,))
    """
    steps = [Step.coerce(s) for s in algorithms]
    if not steps:
        raise ValueError("algorithms is empty: give at least one step, e.g. Step('er', 100)")
    if constraint not in MODES:
        raise ValueError(f"constraint must be one of {', '.join(MODES)}, got {constraint!r}")
    mode = MODES[constraint]
    if real_fft is None:
        real_fft = mode != 0
    elif real_fft and mode == 0:
        raise ValueError('real_fft needs constraint "real" or "positive": a complex object has no Friedel symmetry')
    dtype = np.dtype(dtype)
    if dtype not in (np.complex64, np.complex128):
        raise ValueError(f"dtype must be complex64 or complex128, got {dtype}")
    real = np.float32 if dtype == np.complex64 else np.float64
    if n_starts < 1 or n_best < 1 or n_best > n_starts:
        raise ValueError(f"need 1 <= n_best <= n_starts, got n_best={n_best}, n_starts={n_starts}")

    amp = _amplitudes(intensity, mask, centered)
    shape = amp.shape
    xp = backend.get_xp(backend_name)
    ops = ops_for(xp)
    amp_x = xp.asarray(amp.astype(real))
    known_x = amp_x >= 0
    norm = float(np.sum(amp[amp >= 0] ** 2))
    if norm == 0:
        raise ValueError("the intensity is zero at every known pixel: nothing to phase")
    support0 = _initial_support(support, shape, xp)
    if real_fft:
        half = _friedel_half(amp)
        it_amp = xp.asarray(half.astype(real))
        it_norm = float(np.sum(half[half >= 0] ** 2))
        run_start = _run_start_real
    else:
        it_amp, it_norm, run_start = amp_x, norm, _run_start
    it_known = it_amp >= 0

    schedule = []  # (name, beta) per iteration
    for step in steps:
        schedule += [(step.name, b) for b in step.betas()]
    total = len(schedule)

    rng = backend.default_rng(seed)
    start_rngs = rng.spawn(n_starts)
    keep = max(n_best, min(n_starts, PRTF_SOLUTIONS))
    kept: list = []  # heap of (-score, start, image, support) holding the `keep` best
    scores = np.empty(n_starts)
    errors = np.empty((n_starts, total))

    bar = _progress(progress, n_starts * total)
    loop_seconds = start_seconds = 0.0
    try:
        for start in range(n_starts):
            phases = start_rngs[start].random(it_amp.shape, dtype=real) * real(2.0 * np.pi)
            tic = time.perf_counter()
            hook = None if callback is None else _Hook(callback, callback_every, start, total, it_norm)
            image, supp, errs, seconds = run_start(
                xp,
                ops,
                it_amp,
                it_known,
                support0,
                phases,
                schedule,
                shrinkwrap,
                mode,
                dtype,
                it_norm,
                bar,
                shape,
                hook,
            )
            start_seconds += time.perf_counter() - tic  # errs are on the host: work is done
            loop_seconds += seconds
            score = _fourier_error(image, amp_x, known_x, norm)
            scores[start] = score
            errors[start] = errs
            entry = (-score, start, backend.to_numpy(image), backend.to_numpy(supp))
            if len(kept) < keep:
                heapq.heappush(kept, entry)
            else:
                heapq.heappushpop(kept, entry)
    finally:
        bar.close()

    order = np.argsort(scores, kind="stable")
    aligned, aligned_supports = _align_best(sorted(kept, key=lambda e: (-e[0], e[1])))
    aligned = aligned.astype(dtype)
    known_centred = np.fft.fftshift(backend.to_numpy(known_x))
    prtf_values, radius = compute_prtf(aligned, known_centred)
    images = aligned[:n_best]
    return PhasingResult(
        images=images,
        supports=aligned_supports[:n_best],
        average=images.mean(axis=0),
        scores=scores[order],
        starts=order,
        errors=errors[order],
        prtf=prtf_values,
        prtf_radius=radius,
        info={
            "backend": xp.__name__,
            "ops": type(ops).__name__,
            "dtype": dtype.name,
            "constraint": constraint,
            "iterations": total,
            "real_fft": bool(real_fft),
            "seconds_per_iteration": loop_seconds / (n_starts * total),
            "setup_seconds_per_start": (start_seconds - loop_seconds) / n_starts,
        },
    )


def _amplitudes(intensity, mask, centered: bool) -> np.ndarray:
    """``sqrt(intensity)`` in FFT order as float64, -1 at unknown pixels."""
    data = backend.to_numpy(intensity).astype(np.float64)
    if data.ndim not in (2, 3):
        raise ValueError(f"intensity must have 2 or 3 axes, got shape {data.shape}")
    unknown = ~np.isfinite(data) | (data < 0)
    if mask is not None:
        mask = backend.to_numpy(mask).astype(bool)
        if mask.shape != data.shape:
            raise ValueError(f"mask shape {mask.shape} differs from intensity shape {data.shape}")
        unknown |= mask
    if unknown.all():
        raise ValueError("every intensity pixel is unknown (negative or masked)")
    amp = np.sqrt(np.where(unknown, 0.0, data))
    amp[unknown] = -1.0
    return np.fft.ifftshift(amp) if centered else amp


def _initial_support(support, shape, xp):
    """A bool array of ``shape`` from a diameter or an explicit array."""
    if isinstance(support, (int, float)) and not isinstance(support, bool):
        if support <= 0:
            raise ValueError(f"support diameter must be positive, got {support}")
        result = centered_ball(shape, float(support), xp)
    else:
        result = backend.asarray(support, xp).astype(bool)
        if result.shape != shape:
            raise ValueError(f"support shape {result.shape} differs from intensity shape {shape}")
    if not bool(result.any()):
        raise ValueError("the support is empty")
    return result


def _align_best(best):
    """Centre the first of ``best`` [(−score, start, image, support)], align the rest to it.

    Returns ``(images, supports)`` stacked, shapes ``(K, *shape)``.
    """
    ref_image, ref_support = center(best[0][2], best[0][3])
    images, supports = [ref_image], [ref_support]
    for _, _, image, supp in best[1:]:
        moved, (moved_support,), _ = register(ref_image, image, supp)
        images.append(moved)
        supports.append(moved_support)
    return np.stack(images), np.stack(supports)


def _run_start(
    xp, ops, amp_x, known_x, support0, phases, schedule, shrinkwrap, mode, dtype, norm, bar, shape, hook=None
):
    """One random start on a complex iterate.

    Returns (final constrained image, final support, (T,) errors, seconds spent
    in the iteration loop).
    """
    amp_flat, known_flat = amp_x.reshape(-1), known_x.reshape(-1)
    spectrum = ops.spectrum(amp_x, xp.asarray(phases), dtype)
    x = backend.ifftn(spectrum, overwrite_x=True)
    x = xp.ascontiguousarray(x, dtype=dtype)
    support = support0.copy()
    ops.constrain(x, support, mode)
    buf = x.copy()
    x_flat = x.reshape(-1)
    errs = []
    total = len(schedule)
    _synchronize(xp)
    tic = time.perf_counter()
    for it, (name, beta) in enumerate(schedule):
        if shrinkwrap is not None and it > 0 and it % shrinkwrap.every == 0:
            estimate = x.copy()
            ops.constrain(estimate, support, mode)
            support = shrinkwrap_support(estimate, shrinkwrap.sigma_at(it, total), shrinkwrap.threshold)
        a, b, t = update_coefficients(name, float(beta))
        buf = backend.fftn(buf, overwrite_x=True)
        misfit = ops.fourier(buf.reshape(-1), amp_flat, known_flat)
        errs.append(misfit)
        buf = backend.ifftn(buf, overwrite_x=True)
        ops.update(x_flat, buf.reshape(-1), support.reshape(-1), a, b, t, mode)
        bar.update(1)
        if hook is not None:
            hook(it, x, misfit, name, beta)
    _synchronize(xp)
    seconds = time.perf_counter() - tic
    ops.constrain(x, support, mode)
    errs = np.sqrt(np.array([float(e) for e in errs]) / norm)
    return x, support, errs, seconds


def _friedel_half(amp: np.ndarray) -> np.ndarray:
    """Amplitudes averaged with their Friedel mates, cut to the rfftn half spectrum.

    ``amp`` is in FFT order with -1 at unknown pixels; a pixel known on one
    side only takes that side's value, unknown on both sides stays -1.
    """
    axes = tuple(range(amp.ndim))
    mate = np.roll(np.flip(amp, axis=axes), 1, axis=axes)  # amp(-q)
    here, there = amp >= 0, mate >= 0
    sym = np.where(here & there, 0.5 * (amp + mate), np.where(here, amp, mate))
    sym[~here & ~there] = -1.0
    return np.ascontiguousarray(sym[..., : amp.shape[-1] // 2 + 1])


def _run_start_real(
    xp, ops, amp_half, known_half, support0, phases, schedule, shrinkwrap, mode, dtype, norm, bar, shape, hook=None
):
    """One random start on a real iterate with real-to-complex FFTs; same returns as _run_start.

    Per iteration: the forward real FFT into the pair's half-spectrum buffer,
    the fused modulus projection on it, the inverse (in place, then into the
    pair's real buffer) and the fused real-space update into ``x``; no other
    pass, no allocation.
    """
    amp_flat = amp_half.reshape(-1)
    pair = RealFFT(shape, amp_half.dtype, xp)
    x = pair.inverse(ops.spectrum(amp_half, xp.asarray(phases), dtype)).copy()
    support = support0.copy()
    ops.constrain(x, support, mode)
    x_flat = x.reshape(-1)
    positive = mode == 2
    errs = []
    total = len(schedule)
    _synchronize(xp)
    tic = time.perf_counter()
    for it, (name, beta) in enumerate(schedule):
        if shrinkwrap is not None and it > 0 and it % shrinkwrap.every == 0:
            estimate = x.copy()
            ops.constrain(estimate, support, mode)
            support = shrinkwrap_support(estimate, shrinkwrap.sigma_at(it, total), shrinkwrap.threshold)
        a, b, t = update_coefficients(name, float(beta))
        half = pair.forward(x)
        errs.append(ops.fourier(half.reshape(-1), amp_flat, known_half.reshape(-1)))
        y = pair.inverse(half)
        ops.update_real(x_flat, y.reshape(-1), support.reshape(-1), a, b, t, positive)
        bar.update(1)
        if hook is not None:
            hook(it, x, errs[-1], name, beta)
    _synchronize(xp)
    seconds = time.perf_counter() - tic
    ops.constrain(x, support, mode)
    errs = np.sqrt(np.array([float(e) for e in errs]) / norm)
    return x, support, errs, seconds


def _synchronize(xp) -> None:
    """Wait for the device's queued work (a no-op for numpy), so that wall time measures it."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


def _fourier_error(image, amp_x, known_x, norm: float) -> float:
    """``sqrt(sum_known (|F| - amp)**2 / sum_known amp**2)`` for ``F = fftn(image)``."""
    xp = backend.array_module(image)
    mod = xp.abs(backend.fftn(image))
    diff = xp.where(known_x, mod - amp_x, 0)
    return float(np.sqrt(float(xp.vdot(diff, diff).real) / norm))


class _Hook:
    """Calls the user's callback every ``every`` iterations (and at a start's last one)."""

    def __init__(self, callback, every: int, start: int, total: int, norm: float):
        self.callback, self.every, self.start, self.total, self.norm = callback, max(1, every), start, total, norm

    def __call__(self, it: int, x, misfit, name: str, beta) -> None:
        if (it + 1) % self.every and it != self.total - 1:
            return
        figures = {
            "start": self.start,
            "fourier_error": float(np.sqrt(float(misfit) / self.norm)),
            "algorithm": name,
            "beta": float(beta),
        }
        self.callback(self.start * self.total + it, backend.to_numpy(x), figures)


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(enabled: bool, total: int):
    if not enabled:
        return _NoBar()

    return tqdm(total=total, desc="phasing", unit="it", file=sys.stderr, smoothing=0.1, mininterval=0.5)
