"""Benchmark: seconds per HIO iteration in 3D, ours vs its FFT floor and cohere-core (numpy), same run.

Prints, for each cube side, the machine's load average and two tables.

* The default path (real, positive object: real iterate, real-to-complex FFTs)
  against its floor, the bare real FFT pair ``scipy.fft.rfftn`` +
  ``scipy.fft.irfftn`` (float32, the same worker threads), as a ratio; and
  against the bare pair of the two transforms our loop actually calls
  (:class:`projections.RealFFT`: the same pocketfft kernels writing into kept
  buffers, the inverse in place), so that the ratio shows what the non-FFT
  work costs.  Also the once-per-start
  setup (random spectrum, first inverse FFT), which is not in the per-iteration
  figure.
* The complex path (constraint none) against the bare complex64 FFT pair, and
  both paths against cohere-core; where cupy sees a GPU, our cupy figure.

Then a quality check: the aligned error against the known object after the
same iteration budget, for both codes.

cohere-core is installed by this script into its own environment,
benchmarks/.envs/cohere (git-ignored), and run there in a subprocess.

    python benchmarks/phasing.py                      # 128 and 256, quality at 64
    python benchmarks/phasing.py --sizes 128 --no-quality
    python benchmarks/phasing.py --breakdown          # where an iteration's time goes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np
import scipy.fft

from beamhub.kernels import backend
from beamhub.kernels.phasing import Step, aligned_error, phase, projections
from beamhub.kernels.phasing.retrieval import _amplitudes, _friedel_half
from beamhub.kernels.sim import random_object, simulate_cdi

HERE = Path(__file__).resolve().parent
COHERE_ENV = HERE / ".envs" / "cohere"
COHERE_PIN = "cohere-core==4.5.4"
ROUNDS = 7

COHERE_DRIVER = r"""
import json, sys, time, contextlib, io
import numpy as np
import cohere_core.controller.phasing as ph

data_file, support_fraction, seq, out = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
params = {"algorithm_sequence": seq, "hio_beta": 0.9,
          "initial_support_area": [support_fraction] * np.load(data_file, mmap_mode="r").ndim}
with contextlib.redirect_stdout(io.StringIO()):
    rec = ph.create_rec(params, data_file, "np", -1, debug=True)
    t0 = time.perf_counter()
    rec.iterate()
    elapsed = time.perf_counter() - t0
np.save(out, np.asarray(rec.get_image()))
print(json.dumps({"seconds": elapsed}))
"""


def ensure_cohere() -> Path:
    """The python of benchmarks/.envs/cohere, created with cohere-core on first use."""
    python = COHERE_ENV / "bin" / "python"
    if not python.exists():
        print(f"creating {COHERE_ENV} with {COHERE_PIN} ...", file=sys.stderr)
        venv.create(COHERE_ENV, with_pip=True)
    probe = subprocess.run([python, "-c", "import cohere_core"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "-q", COHERE_PIN], check=True)
    return python


def cohere_run(python: Path, amplitude: np.ndarray, support_fraction: float, sequence: str):
    """Run cohere-core's numpy Rec on ``amplitude`` (centred); returns (seconds, image)."""
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "data.npy"
        np.save(data_file, amplitude.astype(np.float32))
        out = Path(tmp) / "image.npy"
        script = Path(tmp) / "driver.py"
        script.write_text(COHERE_DRIVER)
        env = {**os.environ, "OMP_NUM_THREADS": str(backend.cpu_workers())}
        proc = subprocess.run(
            [python, script, data_file, str(support_fraction), sequence, out], capture_output=True, text=True, env=env
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cohere-core failed:\n{proc.stderr[-2000:]}")
        seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
        return seconds, np.load(out)


def make_pattern(n: int, seed: int = 0):
    """A 3D pattern of side ``n`` from a random object of side ``n // 4`` (linear oversampling 4)."""
    return simulate_cdi(random_object((n // 4,) * 3, seed=seed), oversampling=4.0, seed=seed + 1)


def box_support(shape, fraction: float) -> np.ndarray:
    """cohere-core's initial support: a centred box of ``int(fraction * n)`` per axis."""
    support = np.zeros(shape, dtype=bool)
    sl = []
    for n in shape:
        m = int(fraction * n)
        start = (n - m) // 2
        sl.append(slice(start, start + m))
    support[tuple(sl)] = True
    return support


def ours_timed(
    intensity, support, iterations: int, backend_name: str | None = None, dtype=np.complex64, real_fft: bool = True
) -> tuple[float, float]:
    """(seconds per HIO iteration of phase()'s loop averaged over ``iterations``, setup seconds).

    ``real_fft`` True is the default path for a real, positive object
    (real-to-complex FFTs); False iterates a complex object with complex FFTs.
    The setup (starting spectrum, first inverse FFT, final support projection)
    is paid once per start and reported apart.
    """
    res = phase(
        intensity,
        support=support,
        algorithms=[Step("hio", iterations, 0.9)],
        seed=0,
        backend_name=backend_name,
        dtype=dtype,
        real_fft=real_fft,
    )
    return res.info["seconds_per_iteration"], res.info["setup_seconds_per_start"]


def ours_per_iteration(
    intensity, support, iterations: int, backend_name: str | None = None, dtype=np.complex64, real_fft: bool = True
) -> float:
    """Seconds per HIO iteration of phase()'s loop (see :func:`ours_timed`)."""
    return ours_timed(intensity, support, iterations, backend_name, dtype, real_fft)[0]


def real_pair(n: int, repeats: int) -> float:
    """Seconds per float32 ``scipy.fft.rfftn`` + ``scipy.fft.irfftn`` of an n^3 cube, averaged.

    The floor of the real path as the issue defines it: the library's own
    real-to-complex pair with ``cpu_workers()`` threads, each call allocating
    its result as it does by default (``overwrite_x`` on the inverse).
    """
    workers = backend.cpu_workers()
    x = np.ones((n, n, n), np.float32)

    def pair(x):
        h = scipy.fft.rfftn(x, workers=workers)
        return scipy.fft.irfftn(h, s=x.shape, workers=workers, overwrite_x=True)

    x = pair(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        x = pair(x)
    return (time.perf_counter() - t0) / repeats


def loop_pair(n: int, repeats: int) -> float:
    """Seconds per bare pair of the transforms our real loop calls (a projections.RealFFT)."""
    pair = projections.RealFFT((n, n, n), np.float32)
    x = np.ones((n, n, n), np.float32)
    pair.inverse(pair.forward(x))
    t0 = time.perf_counter()
    for _ in range(repeats):
        pair.inverse(pair.forward(x))
    return (time.perf_counter() - t0) / repeats


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as /proc/loadavg gives them ('n/a' elsewhere)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def fft_pair(n: int, repeats: int) -> float:
    """Seconds per in-place complex64 forward + inverse FFT of an n^3 cube, averaged over ``repeats``."""
    buf = np.ones((n, n, n), np.complex64)
    buf = backend.ifftn(backend.fftn(buf, overwrite_x=True), overwrite_x=True)
    t0 = time.perf_counter()
    for _ in range(repeats):
        buf = backend.fftn(buf, overwrite_x=True)
        buf = backend.ifftn(buf, overwrite_x=True)
    return (time.perf_counter() - t0) / repeats


def speed(n: int, iterations: int, cohere_python: Path | None) -> dict:
    data = make_pattern(n)
    amplitude = np.sqrt(np.maximum(data.intensity, 0))
    support = box_support(data.intensity.shape, 0.35)
    row = {"n": n, "iterations": iterations, "workers": backend.cpu_workers(), "load_before": load_average()}
    # This machine may be shared and its load changes within seconds: ours and
    # the FFT floors are timed alternately, ROUNDS times, each an average over
    # `iterations`, the order of the two real pairs swapped every round.  The
    # seconds are the best round's; a ratio is the median over rounds of the
    # ratio within a round (figures seconds apart), with its range.
    ours_per_iteration(data.intensity, support, 2)  # warm-up: numba cache, FFT plans
    ours_per_iteration(data.intensity, support, 2, real_fft=False)
    figures = {key: [] for key in ("real_pair", "loop_pair", "ours", "setup", "fft_pair", "ours_complex")}
    pairs = {"real_pair": real_pair, "loop_pair": loop_pair}
    for round_ in range(ROUNDS):
        first, second = sorted(pairs, reverse=bool(round_ % 2))
        figures[first].append(pairs[first](n, iterations))
        per_iteration, setup = ours_timed(data.intensity, support, iterations)
        figures["ours"].append(per_iteration)
        figures["setup"].append(setup)
        figures[second].append(pairs[second](n, iterations))
        figures["fft_pair"].append(fft_pair(n, iterations))
        figures["ours_complex"].append(ours_per_iteration(data.intensity, support, iterations, real_fft=False))
    row.update({key: min(values) for key, values in figures.items()})
    for key in ("real_pair", "loop_pair", "fft_pair"):
        ours_key = "ours_complex" if key == "fft_pair" else "ours"
        ratios = np.array(figures[ours_key]) / np.array(figures[key])
        row[f"ratio_{key}"] = [float(np.median(ratios)), float(ratios.min()), float(ratios.max())]
    row["load_after"] = load_average()
    if backend.gpu_available():
        ours_per_iteration(data.intensity, support, 2, backend_name="cupy")
        row["cupy"] = min(
            ours_per_iteration(data.intensity, support, 10 * iterations, backend_name="cupy") for _ in range(ROUNDS)
        )
    if cohere_python:
        row["cohere"] = (
            min(cohere_run(cohere_python, amplitude, 0.35, f"{iterations}*HIO")[0] for _ in range(2)) / iterations
        )
    return row


def breakdown(n: int, repeats: int) -> dict:
    """Where a real-path iteration's time goes, call by call: {step: (min, median) seconds}.

    The steps of one iteration of phase()'s real loop on the benchmark pattern
    (forward transform, modulus projection, inverse, update), the whole
    iteration, and the bare RealFFT and scipy rfftn + irfftn pairs, each timed
    alone and interleaved ``repeats`` times.  On a loaded machine the minimum is
    the closest to the uncontended cost.
    """
    data = make_pattern(n)
    support = box_support(data.intensity.shape, 0.35).reshape(-1)
    amp = _friedel_half(_amplitudes(data.intensity, None, True)).astype(np.float32)
    known = (amp >= 0).reshape(-1)
    ops, shape = projections.ops_for(np), (n, n, n)
    pair = projections.RealFFT(shape, np.float32)
    phases = np.random.default_rng(0).random(amp.shape, dtype=np.float32) * np.float32(2 * np.pi)
    x = pair.inverse(ops.spectrum(amp, phases, np.complex64)).copy()
    a, b, t = projections.update_coefficients("hio", 0.9)
    amp, x_flat = amp.reshape(-1), x.reshape(-1)
    workers = backend.cpu_workers()

    def iteration():
        half = pair.forward(x)
        ops.fourier(half.reshape(-1), amp, known)
        ops.update_real(x_flat, pair.inverse(half).reshape(-1), support, a, b, t, True)

    def scipy_pair():
        h = scipy.fft.rfftn(x, workers=workers)
        scipy.fft.irfftn(h, s=shape, workers=workers, overwrite_x=True)

    steps = {
        "iteration": iteration,
        "forward (RealFFT)": lambda: pair.forward(x),
        "modulus projection": lambda: ops.fourier(pair._half.reshape(-1), amp, known),
        "inverse (RealFFT)": lambda: pair.inverse(pair._half),
        "update": lambda: ops.update_real(x_flat, pair._real.reshape(-1), support, a, b, t, True),
        "bare RealFFT pair": lambda: pair.inverse(pair.forward(x)),
        "scipy rfftn + irfftn pair": scipy_pair,
    }
    times = {key: [] for key in steps}
    for step in steps.values():
        step()
    for _ in range(repeats):
        for key, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - t0)
    return {key: (min(v), float(np.median(v))) for key, v in times.items()}


def quality(n: int, hio: int, er: int, runs: int, cohere_python: Path | None) -> dict:
    data = make_pattern(n, seed=10)
    amplitude = np.sqrt(np.maximum(data.intensity, 0))
    support = box_support(data.intensity.shape, 0.35)
    steps = [Step("hio", hio, 0.9), Step("er", er)]
    out = {"n": n, "budget": f"{hio} HIO + {er} ER", "runs": runs}
    for constraint in ("positive", "none"):
        errs = [
            aligned_error(
                phase(data.intensity, support=support, algorithms=steps, seed=s, constraint=constraint).images[0],
                data.object,
            )
            for s in range(runs)
        ]
        out[f"ours_{constraint}"] = errs
    if cohere_python:
        errs = []
        for _ in range(runs):
            _, image = cohere_run(cohere_python, amplitude, 0.35, f"{hio}*HIO+{er}*ER")
            errs.append(aligned_error(image, data.object))
        out["cohere"] = errs
    return out


FLOOR_HEADER = (
    "| n^3 | ours s/it (real object, default) | rfftn + irfftn pair s | **ours / pair** "
    "| bare pair of the transforms our loop calls s | ours / that pair | setup s/start "
    "| load average before; after |\n|---|---|---|---|---|---|---|---|"
)
OTHER_HEADER = (
    "| n^3 | ours complex s/it | complex64 FFT pair s | ours complex / pair | cohere-core s/it "
    "| ours / cohere (real / complex) | cupy s/it |\n|---|---|---|---|---|---|---|"
)


def format_ratio(ratio) -> str:
    """``median (min–max)`` of a ratio measured round by round."""
    median, low, high = ratio
    return f"{median:.2f} ({low:.2f}–{high:.2f})"


def format_floor_row(row: dict) -> str:
    """One markdown row: the real path against its FFT floors (:data:`FLOOR_HEADER`)."""
    return (
        f"| {row['n']}^3 | {row['ours']:.4f} | {row['real_pair']:.4f} | "
        f"**{format_ratio(row['ratio_real_pair'])}** | {row['loop_pair']:.4f} | "
        f"{format_ratio(row['ratio_loop_pair'])} | {row['setup']:.3f} | "
        f"{row['load_before']}; {row['load_after']} |"
    )


def format_other_row(row: dict) -> str:
    """One markdown row: the complex path, cohere-core and cupy (:data:`OTHER_HEADER`)."""
    ours, ours_c, pair = row["ours"], row["ours_complex"], row["fft_pair"]
    cohere, cupy = row.get("cohere"), row.get("cupy")
    cohere_s = "n/a" if cohere is None else f"{cohere:.4f}"
    ratio_s = "n/a" if cohere is None else f"{ours / cohere:.3f} / {ours_c / cohere:.3f}"
    cupy_s = "n/a" if cupy is None else f"{cupy:.5f} ({ours / cupy:.0f}x faster)"
    return (
        f"| {row['n']}^3 | {ours_c:.4f} | {pair:.4f} | {format_ratio(row['ratio_fft_pair'])} "
        f"| {cohere_s} | {ratio_s} | {cupy_s} |"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument(
        "--iterations",
        type=int,
        nargs="+",
        default=None,
        help="HIO iterations timed per size (default 20 at <=128, 10 above)",
    )
    parser.add_argument("--no-cohere", action="store_true", help="skip the reference")
    parser.add_argument("--no-quality", action="store_true", help="skip the quality check")
    parser.add_argument("--quality-size", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--breakdown", action="store_true", help="only time the steps of a real-path iteration call by call"
    )
    args = parser.parse_args(argv)

    if args.breakdown:
        for n in args.sizes:
            repeats = 100 if n <= 128 else 15
            print(
                f"\n{n}^3, {repeats} interleaved calls each, load average {load_average()}:"
                "\n\n| step | min ms | median ms |\n|---|---|---|"
            )
            for key, (low, median) in breakdown(n, repeats).items():
                print(f"| {key} | {low * 1e3:.2f} | {median * 1e3:.2f} |")
            print(f"\nload average after: {load_average()}")
        return 0

    cohere_python = None if args.no_cohere else ensure_cohere()
    iterations = args.iterations or [20 if n <= 128 else 10 for n in args.sizes]
    print(
        f"machine: {os.cpu_count()} CPUs, {backend.cpu_workers()} FFT workers; "
        f"GPU: {'yes' if backend.gpu_available() else 'none'}; load average {load_average()}",
        flush=True,
    )
    rows = []
    for n, its in zip(args.sizes, iterations):
        row = speed(n, its, cohere_python)
        rows.append(row)
        print(
            f"{n}^3: ours {row['ours']:.4f} s/it, rfftn + irfftn pair {row['real_pair']:.4f} s; "
            f"ours / pair {format_ratio(row['ratio_real_pair'])}; load {row['load_after']}",
            flush=True,
        )
    print(
        "\nours = real object, real-to-complex FFTs (the default for constraint positive/real)."
        f"\n{ROUNDS} alternating rounds, each averaged over the iterations; seconds: the best"
        " round; ratios: median (range) of the ratios within a round;"
        f" {backend.cpu_workers()} FFT threads everywhere\n"
    )
    print(FLOOR_HEADER)
    for row in rows:
        print(format_floor_row(row))
    print("\nours complex = complex iterate, complex FFTs (constraint none, or real_fft=False)\n")
    print(OTHER_HEADER)
    for row in rows:
        print(format_other_row(row))
    result = {"speed": rows}
    if not args.no_quality:
        q = quality(args.quality_size, 300, 50, 3, cohere_python)
        result["quality"] = q
        print(
            f"\nquality at {q['n']}^3, {q['budget']}, {q['runs']} runs each, aligned error "
            "(lower is better; min / median):"
        )
        for key in ("ours_positive", "ours_none", "cohere"):
            if key in q:
                e = np.array(q[key])
                print(f"  {key:14s} {e.min():.4f} / {np.median(e):.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
