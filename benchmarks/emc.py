"""EMC seconds per iteration on the issue's problem, beside Dragonfly measured in the same run.

Problem (issues 6 and 19): 6000 frames of a 75x75-pixel detector, ~300 photons per frame,
num_div 8 (25,680 orientations), a 107^3 model, scaling on (``--no-scaling`` turns it off).

Runs `beamhub emc` on a simulated data set (written once) with 1 rank x all threads, then 2
MPI ranks x 1 thread when mpiexec is present, and with cupy when a GPU is usable.  References
measured in the same run: our numba loops (BEAMHUB_EMC_KERNELS=numba, 1 rank x all
threads) and, given `--dragonfly PATH` (or $DRAGONFLY_EMC), Dragonfly's own `emc` on the
same files in the same two layouts (Dragonfly is not packaged for pip or Debian: build it
from its source, outside this repository).  Reports, from each EMC.log, the median and mean
seconds per iteration of iterations 2.. and iteration 1 alone (which also builds or loads
the kernels and computes the merge weights), the peak resident memory of the largest
process (= per rank) and the CPU seconds of the whole run (both from GNU time), our time
and CPU seconds as fractions of Dragonfly's, the machine's
load average before and after each case, and optionally (``--truth``) the correlation with
the truth.  ``--phases`` adds where one C iteration's CPU time goes, kernel by kernel.
Data go to $BEAMHUB_BENCH_DATA (default /tmp/beamhub-bench), outside the checkout.

    python benchmarks/emc.py --dragonfly /tmp/dragonfly-src/build/emc   # the issue's problem
    python benchmarks/emc.py --scale small --iterations 16 --truth      # a quick 1/8 problem
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from beamhub.kernels.backend import cpu_workers, gpu_available
from beamhub.kernels.emc import EMC, EMCConfig, load_problem
from beamhub.kernels.emc.detector import model_size
from beamhub.kernels.emc.ops import ops_for
from beamhub.kernels.emc.quaternions import num_rotations, quaternion_sampling
from beamhub.kernels.emc.truth import global_rotation, orientation_errors, rotate_volume, shell_correlation
from beamhub.kernels.io.dragonfly import read_log_rows
from beamhub.kernels.sim.spi import simulate_spi, spi_detector, write_spi

HERE = Path(__file__).resolve().parent
# simulated inputs and run folders live outside the checkout (hundreds of MB for the issue problem)
DATA = Path(os.environ.get("BEAMHUB_BENCH_DATA", Path(tempfile.gettempdir()) / "beamhub-bench"))
GNU_TIME = "/usr/bin/time"
PROBLEMS = {
    # name: (frames, detsize, detd pixels, num_div)
    "issue": (6000, 75, 300.0, 8),
    "small": (1500, 41, 160.0, 5),
}


def beamhub_exe() -> str:
    return str(Path(sys.executable).with_name("beamhub"))


def prepare(scale: str) -> Path:
    """Simulate (once) and return the folder holding config.ini."""
    nd, detsize, detd, num_div = PROBLEMS[scale]
    folder = DATA / f"emc-{scale}"
    if (folder / "config.ini").exists():
        return folder
    det = spi_detector(detsize, detd, stoprad=3.0)
    diameter = model_size(det.q, det.mask) / 4.5
    t = time.perf_counter()
    sim = simulate_spi(
        num_data=nd, detsize=detsize, detd=detd, stoprad=3.0, mean_count=300.0, diameter=diameter, rng=2026
    )
    if scale == "issue":  # Dragonfly's own defaults, as a Dragonfly user would run it
        write_spi(folder, sim, num_div=num_div, beta="auto", beta_schedule=(1.41421356, 10))
    else:  # a faster anneal, so a short run converges enough to compare with the truth
        write_spi(folder, sim, num_div=num_div, beta="0.2", beta_schedule=(2.0, 4))
    print(f"simulated in {time.perf_counter() - t:.1f} s -> {folder}", file=sys.stderr)
    return folder


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_case(
    folder: Path,
    name: str,
    iterations: int,
    ranks: int,
    threads: int,
    backend: str = "numpy",
    kernels: str = "auto",
    dragonfly: str | None = None,
    scaling: bool = True,
) -> dict:
    """Run ``beamhub emc`` (or Dragonfly's ``emc`` when ``dragonfly`` is its path) on a copy of
    ``folder``; seconds per iteration from its EMC.log, peak memory per rank from GNU time."""
    work = folder.parent / f"{folder.name}-run-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for f in folder.iterdir():
        if f.is_file():
            (work / f.name).symlink_to(f)
    (work / "data").mkdir()
    (work / "config.ini").unlink()
    text = (folder / "config.ini").read_text().replace("[emc]\n", "[emc]\nfixed_seed = 1\n")
    text = text.replace("need_scaling = 0", f"need_scaling = {int(scaling)}")
    (work / "config.ini").write_text(text)
    env = dict(
        os.environ,
        BEAMHUB_BACKEND=backend,
        NUMBA_NUM_THREADS=str(threads),
        BEAMHUB_THREADS=str(threads),
        OMP_NUM_THREADS="1",
        BEAMHUB_EMC_KERNELS=kernels,
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
    )
    if dragonfly:
        # Dragonfly: OpenMP threads per rank, paths relative to the working folder; Open MPI
        # binds a 1- or 2-rank job to one core each unless told not to
        env["OMP_NUM_THREADS"] = str(threads)
        cmd = [
            "mpirun",
            "--allow-run-as-root",
            "--bind-to",
            "none",
            "-n",
            str(ranks),
            dragonfly,
            "-c",
            "config.ini",
            str(iterations),
        ]
    else:
        cmd = [beamhub_exe(), "emc", str(work / "config.ini"), "-n", str(iterations), "-q"]
        if ranks > 1:
            cmd = ["mpiexec", "--allow-run-as-root", "--oversubscribe", "-n", str(ranks)] + cmd
    rss_file = work / "maxrss.txt"
    if Path(GNU_TIME).exists():  # peak resident set of the largest process (a rank, kB), CPU seconds
        cmd = [GNU_TIME, "-f", "%M %U %S", "-o", str(rss_file)] + cmd
    load_before = loadavg()
    t = time.perf_counter()
    subprocess.run(
        cmd, check=True, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if dragonfly else None
    )
    wall = time.perf_counter() - t
    rows = read_log_rows(work / "EMC.log")
    times = [float(r[1]) for r in rows]
    rest = times[1:] or times
    rss = cpu = float("nan")
    if rss_file.exists():
        kb, user, system = rss_file.read_text().split()[-3:]
        rss, cpu = float(kb) / 1e6, float(user) + float(system)
    return {
        "name": name,
        "ranks": ranks,
        "threads": threads,
        "backend": backend,
        "s_per_iter": float(np.median(rest)),
        "mean": float(np.mean(rest)),
        "first": times[0],
        "times": times,
        "wall": wall,
        "work": work,
        "rss_gb": rss,
        "cpu": cpu,
        "load": f"{load_before} -> {loadavg()}",
    }


def truth_figures(folder: Path, work: Path, iteration: int, frame_of=None) -> tuple[str, np.ndarray]:
    """Median orientation error and per-shell correlation of ``work``'s output with the truth.

    The model's frame (the rotation ``g`` to the truth's) comes from the run's most likely
    orientations, or is ``frame_of`` when given: Dragonfly numbers its orientations in
    another order, so its model is compared in the frame of ours (the two models start
    from the same random model and agree to ~0.997, see RESULTS.md).  Returns the line and ``g``.
    """
    num_div = int(
        [ln for ln in (folder / "config.ini").read_text().splitlines() if ln.startswith("num_div")][0].split("=")[1]
    )
    q, _ = quaternion_sampling(num_div)
    true_q = np.loadtxt(folder / "true_quaternions.dat")
    with h5py.File(work / "data" / f"output_{iteration:03d}.h5") as f:
        model, weight, best = f["intens"][0], f["inter_weight"][0], f["orientations"][()].ravel()
    s = model.shape[0]
    truth = np.fromfile(folder / "intensity.bin").reshape(s, s, s)
    g = global_rotation(q[best], true_q) if frame_of is None else frame_of
    _, corr = shell_correlation(model, rotate_volume(truth, g), 8, 0.7, valid=weight > 0)
    shells = "shell correlations to 0.7 edge: " + " ".join(f"{c:.2f}" for c in corr)
    if frame_of is not None:
        return f"after {iteration} iterations (in the frame of our model): {shells}", g
    err = orientation_errors(q[best], true_q, g, twin=True)
    return (
        f"after {iteration} iterations: median orientation error {np.median(err):.1f} deg "
        f"(truth or Friedel twin); {shells}"
    ), g


def phases(folder: Path, iterations: int, scaling: bool) -> str:
    """CPU seconds of each C kernel phase per iteration, in this process (1 rank, all threads),
    where the C library's phase counters can be read."""
    cfg = EMCConfig.from_file(folder / "config.ini")
    det, frames, q, w, model, scale = load_problem(cfg)
    settings = cfg.settings()
    settings.need_scaling = scaling
    settings.fixed_seed = True
    ops = ops_for(np, "native")
    emc = EMC(det, frames, q, w, settings, model=model, scale=scale, ops=ops)
    names = ["expand (slices + log)", "likelihood product", "merge photon sums", "merge splats", "merge weights (once)"]
    lines = []
    for _ in range(iterations):
        t0 = time.process_time()
        fig = emc.iterate()
        cpu = time.process_time() - t0
        out = (ctypes.c_double * 8)()
        ops.lib.emc_phase_times(out)
        parts = ", ".join(f"{n} {out[i]:.2f}" for i, n in enumerate(names) if out[i])
        lines.append(
            f"iteration {fig.iteration}: wall {fig.time:.2f} s, process CPU {cpu:.2f} s; "
            f"CPU s by phase: {parts}; load {loadavg()}"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(PROBLEMS), default="issue")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--no-mpi", action="store_true", help="skip the 2-rank cases")
    ap.add_argument("--no-reference", action="store_true", help="skip the numba-loops reference run (1 rank)")
    ap.add_argument("--no-scaling", action="store_true", help="run without per-frame scale factors")
    ap.add_argument("--truth", action="store_true", help="also report correlation with the truth")
    ap.add_argument(
        "--phases", action="store_true", help="also report the CPU seconds of each C kernel phase (in-process, 1 rank)"
    )
    ap.add_argument(
        "--dragonfly",
        default=os.environ.get("DRAGONFLY_EMC"),
        metavar="EMC",
        help="path to Dragonfly's emc executable: also time it on the same data, same "
        "rank/thread layouts (default $DRAGONFLY_EMC)",
    )
    args = ap.parse_args()
    scaling = not args.no_scaling
    folder = prepare(args.scale)
    nd, detsize, _, num_div = PROBLEMS[args.scale]
    print(
        f"problem: {nd} frames, {detsize}x{detsize} pixels, num_div {num_div} "
        f"({num_rotations(num_div)} orientations), ~300 photons/frame, scaling "
        f"{'on' if scaling else 'off'}; load average {loadavg()}"
    )
    cores = cpu_workers()
    one = "1 rank x %d threads" % cores
    two = "2 ranks x 1 thread"
    mpi = not args.no_mpi and shutil.which("mpiexec") and cores >= 2
    cases = [(one, 1, cores, "numpy", "auto", None)]
    if args.dragonfly:  # each layout right after ours: the same moment of a shared machine
        cases.append(("Dragonfly " + one, 1, cores, "numpy", "auto", args.dragonfly))
    if mpi:
        cases.append((two, 2, 1, "numpy", "auto", None))
        if args.dragonfly:
            cases.append(("Dragonfly " + two, 2, 1, "numpy", "auto", args.dragonfly))
    if gpu_available():
        cases.append(("cupy, 1 GPU", 1, cores, "cupy", "array", None))
    if not args.no_reference:
        cases.append(("numba loops (reference)", 1, cores, "numpy", "numba", None))
    results = []
    for name, ranks, threads, backend, kernels, dragonfly in cases:
        tag = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        r = run_case(folder, tag, args.iterations, ranks, threads, backend, kernels, dragonfly, scaling)
        results.append((name, r))
        times = ", ".join(f"{t:.2f}" for t in r["times"])
        print(
            f"{name:34s} median {r['s_per_iter']:7.2f} s/iter, mean {r['mean']:7.2f}, first "
            f"{r['first']:7.2f}   (iterations: {times}); peak RSS per rank {r['rss_gb']:.2f} GB; "
            f"CPU {r['cpu']:.1f} s in all (setup included); load {r['load']}",
            flush=True,
        )
    found = dict(results)
    ref = found.get("numba loops (reference)")
    for name, r in results:
        if name.startswith(("numba", "Dragonfly")):
            continue
        if ref is not None:
            print(f"{name:34s} vs numba loops in this run: {ref['s_per_iter'] / r['s_per_iter']:.2f}x faster")
        theirs = found.get("Dragonfly " + name)
        if theirs is not None:
            print(
                f"{name:34s} vs Dragonfly in this run ({theirs['s_per_iter']:.2f} s/iter median, "
                f"{theirs['mean']:.2f} mean): ours takes {r['s_per_iter'] / theirs['s_per_iter']:.3f}x "
                f"(mean {r['mean'] / theirs['mean']:.3f}x) of its time per iteration, "
                f"{r['cpu'] / theirs['cpu']:.3f}x of its CPU seconds (whole runs, which a busy "
                f"machine inflates less than wall time)"
            )
    if args.truth:
        ours = None
        for name, r in results:
            dragonfly = name.startswith("Dragonfly")
            line, g = truth_figures(folder, r["work"], args.iterations, ours if dragonfly else None)
            ours = g if ours is None and not dragonfly else ours
            print(f"{name}: {line}")
    if args.phases:
        print(phases(folder, args.iterations, scaling))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
