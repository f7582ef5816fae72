"""EMC seconds per iteration on the issue's problem, beside Dragonfly and our numba loops.

Problem (issue 6): 6000 frames of a 75x75-pixel detector, ~300 photons per frame,
num_div 8 (25,680 orientations), a 107^3 model.  The issue states Dragonfly (C, MPI +
OpenMP) takes 20 s per iteration on it on the 2-core dev box (1 rank x 2 threads or 2
ranks x 1 thread alike); that figure is printed beside ours.

Runs `beamhub emc` on a simulated data set (written once) with 1 rank x all threads, then 2
MPI ranks x 1 thread when mpiexec is present, and with cupy when a GPU is usable.  References
measured in the same run: our own numba loops (BEAMHUB_EMC_NATIVE=0, the previous
implementation, 1 rank x all threads) and, given `--dragonfly PATH` (or $DRAGONFLY_EMC),
Dragonfly's own `emc` on the same files in the same two layouts (Dragonfly is not packaged
for pip or Debian: build it from its source).  Reports the median seconds per iteration of
iterations 2.. (iteration 1 also loads the kernels) from each EMC.log, and optionally the
correlation with the truth.  Data go to $BEAMHUB_BENCH_DATA (default /tmp/beamhub-bench),
outside the checkout.

    python benchmarks/emc.py                                   # the issue's problem
    python benchmarks/emc.py --dragonfly ~/Dragonfly/emc       # ... and Dragonfly beside it
    python benchmarks/emc.py --scale small                     # a quick 1/8 problem
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# simulated inputs and run folders live outside the checkout (hundreds of MB for the issue problem)
DATA = Path(os.environ.get("BEAMHUB_BENCH_DATA", Path(tempfile.gettempdir()) / "beamhub-bench"))
DRAGONFLY_S_PER_ITER = 20.0
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
    from beamhub.kernels.emc.detector import model_size  # noqa: PLC0415
    from beamhub.kernels.sim.spi import simulate_spi, spi_detector, write_spi  # noqa: PLC0415

    det = spi_detector(detsize, detd, stoprad=3.0)
    diameter = model_size(det.q, det.mask) / 4.5
    t = time.perf_counter()
    sim = simulate_spi(num_data=nd, detsize=detsize, detd=detd, stoprad=3.0, mean_count=300.0,
                       diameter=diameter, rng=2026)
    if scale == "issue":  # Dragonfly's own defaults, as a Dragonfly user would run it
        write_spi(folder, sim, num_div=num_div, beta="auto", beta_schedule=(1.41421356, 10))
    else:  # a faster anneal, so a short run converges enough to compare with the truth
        write_spi(folder, sim, num_div=num_div, beta="0.2", beta_schedule=(2.0, 4))
    print(f"simulated in {time.perf_counter() - t:.1f} s -> {folder}", file=sys.stderr)
    return folder


def run_case(folder: Path, name: str, iterations: int, ranks: int, threads: int,
             backend: str = "numpy", native: bool = True, dragonfly: str | None = None) -> dict:
    """Run ``beamhub emc`` (or Dragonfly's ``emc`` when ``dragonfly`` is its path) on a copy of
    ``folder``; seconds per iteration from its EMC.log."""
    work = folder.parent / f"{folder.name}-run-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for f in folder.iterdir():
        if f.is_file():
            (work / f.name).symlink_to(f)
    (work / "data").mkdir()
    (work / "config.ini").unlink()
    text = (folder / "config.ini").read_text().replace("[emc]\n", "[emc]\nfixed_seed = 1\n")
    (work / "config.ini").write_text(text)
    env = dict(os.environ, BEAMHUB_BACKEND=backend, NUMBA_NUM_THREADS=str(threads),
               BEAMHUB_THREADS=str(threads), OMP_NUM_THREADS="1",
               BEAMHUB_EMC_NATIVE="1" if native else "0",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if dragonfly:
        # Dragonfly: OpenMP threads per rank, paths relative to the working folder; Open MPI
        # binds a 1- or 2-rank job to one core each unless told not to
        env["OMP_NUM_THREADS"] = str(threads)
        cmd = ["mpirun", "--allow-run-as-root", "--bind-to", "none", "-n", str(ranks), dragonfly,
               "-c", "config.ini", str(iterations)]
    else:
        cmd = [beamhub_exe(), "emc", str(work / "config.ini"), "-n", str(iterations), "-q"]
        if ranks > 1:
            cmd = ["mpiexec", "--allow-run-as-root", "--oversubscribe", "-n", str(ranks)] + cmd
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=work,
                   stdout=subprocess.DEVNULL if dragonfly else None)
    wall = time.perf_counter() - t
    from beamhub.kernels.io.dragonfly import read_log_rows  # noqa: PLC0415

    rows = read_log_rows(work / "EMC.log")
    times = [float(r[1]) for r in rows]
    per_iter = float(np.median(times[1:])) if len(times) > 1 else times[0]
    return {"name": name, "ranks": ranks, "threads": threads, "backend": backend,
            "s_per_iter": per_iter, "times": times, "wall": wall, "work": work}


def truth_figures(folder: Path, work: Path, iteration: int) -> str:
    import h5py  # noqa: PLC0415

    from beamhub.kernels.emc.quaternions import quaternion_sampling  # noqa: PLC0415
    from beamhub.kernels.emc.truth import (global_rotation, orientation_errors,  # noqa: PLC0415
                                           rotate_volume, shell_correlation)

    num_div = int([ln for ln in (folder / "config.ini").read_text().splitlines()
                   if ln.startswith("num_div")][0].split("=")[1])
    q, _ = quaternion_sampling(num_div)
    true_q = np.loadtxt(folder / "true_quaternions.dat")
    with h5py.File(work / "data" / f"output_{iteration:03d}.h5") as f:
        model, weight, best = f["intens"][0], f["inter_weight"][0], f["orientations"][()]
    s = model.shape[0]
    truth = np.fromfile(folder / "intensity.bin").reshape(s, s, s)
    g = global_rotation(q[best], true_q)
    err = orientation_errors(q[best], true_q, g, twin=True)
    _, corr = shell_correlation(model, rotate_volume(truth, g), 8, 0.7, valid=weight > 0)
    return (f"after {iteration} iterations: median orientation error {np.median(err):.1f} deg "
            f"(truth or Friedel twin); shell correlations to 0.7 edge: "
            + " ".join(f"{c:.2f}" for c in corr))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(PROBLEMS), default="issue")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--no-mpi", action="store_true", help="skip the 2-rank case")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the numba-loops reference run (1 rank)")
    ap.add_argument("--truth", action="store_true", help="also report correlation with the truth")
    ap.add_argument("--dragonfly", default=os.environ.get("DRAGONFLY_EMC"), metavar="EMC",
                    help="path to Dragonfly's emc executable: also time it on the same data, same "
                         "rank/thread layouts (default $DRAGONFLY_EMC)")
    args = ap.parse_args()
    from beamhub.kernels.backend import cpu_workers, gpu_available  # noqa: PLC0415

    folder = prepare(args.scale)
    nd, detsize, _, num_div = PROBLEMS[args.scale]
    from beamhub.kernels.emc.quaternions import num_rotations  # noqa: PLC0415

    print(f"problem: {nd} frames, {detsize}x{detsize} pixels, num_div {num_div} "
          f"({num_rotations(num_div)} orientations), ~300 photons/frame")
    cores = cpu_workers()
    one = "1 rank x %d threads" % cores
    two = "2 ranks x 1 thread"
    mpi = not args.no_mpi and shutil.which("mpiexec") and cores >= 2
    cases = [(one, 1, cores, "numpy", True, None)]
    if mpi:
        cases.append((two, 2, 1, "numpy", True, None))
    if gpu_available():
        cases.append(("cupy, 1 GPU", 1, cores, "cupy", True, None))
    if not args.no_reference:
        cases.append(("numba loops (reference)", 1, cores, "numpy", False, None))
    if args.dragonfly:
        cases.append(("Dragonfly " + one, 1, cores, "numpy", True, args.dragonfly))
        if mpi:
            cases.append(("Dragonfly " + two, 2, 1, "numpy", True, args.dragonfly))
    results = []
    for name, ranks, threads, backend, native, dragonfly in cases:
        tag = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        r = run_case(folder, tag, args.iterations, ranks, threads, backend, native, dragonfly)
        results.append((name, r))
        times = ", ".join(f"{t:.2f}" for t in r["times"])
        line = f"{name:34s} {r['s_per_iter']:7.2f} s/iter   (iterations: {times})"
        if args.scale == "issue" and not name.startswith("Dragonfly"):
            line += (f"   vs the issue's Dragonfly figure {DRAGONFLY_S_PER_ITER:.0f} s/iter: "
                     f"x{DRAGONFLY_S_PER_ITER / r['s_per_iter']:.2f}")
        print(line, flush=True)
    found = dict(results)
    ref = found.get("numba loops (reference)")
    for name, r in results:
        if ref is not None and not name.startswith(("numba", "Dragonfly")):
            print(f"{name:34s} vs numba loops measured in this run ({ref['s_per_iter']:.2f} s/iter): "
                  f"x{ref['s_per_iter'] / r['s_per_iter']:.2f}")
        theirs = found.get("Dragonfly " + name)
        if theirs is not None:
            print(f"{name:34s} vs Dragonfly measured in this run ({theirs['s_per_iter']:.2f} s/iter): "
                  f"x{theirs['s_per_iter'] / r['s_per_iter']:.2f}")
    if args.truth:
        print(truth_figures(folder, results[0][1]["work"], args.iterations))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
