"""Tomography benchmark: slices per second and error against the phantom, ours beside references.

Our gridrec and fbp against astra-toolbox's CPU FBP and scikit-image's
``iradon`` (both from PyPI, installed by this script into
benchmarks/.envs/tomo), all on the same simulated Shepp-Logan scan, in the same
run.  tomopy is timed too, from its own venv (benchmarks/.envs/tomopy):

* tomopy 1.15.2 is built from its public source the plain way (its CMake build
  of libtomo, Release, FFTW from Debian's libfftw3-dev, MKL off; then
  ``pip install --no-deps .`` of the Python part with numpy < 2 and
  scipy < 1.14 as its setup.cfg asks) by ``--build-tomopy`` or on first use
  when the source mirror is present (/work/.mirror/tomopy+tomopy or
  ``$TOMOPY_SRC``).  Nothing of tomopy enters this repository.
* gridrec: both reconstruct the same 16 rows with 2 threads (tomopy's
  ``ncore=2``), each library given the axis in its own convention (tomopy's
  gridrec and ours mean the same column, see docs/tomo.md); the runs alternate
  ours / tomopy / ours / tomopy and the best of each is compared, since the
  machine is shared.
* find_center: both on one 2048-column sinogram with the axis 7.3 px right of
  the middle, default arguments (tomopy starts at ``N // 2``, ours from Vo's
  coarse estimate); time and error against the true axis.

Sizes for the other references:

* full: 2048 columns x 1501 angles x 16 rows (the issue's size); our gridrec
  reconstructs all 16 rows, astra one slice (13.5 s a slice here);
* small: 1024 columns x 751 angles, one slice, for the pixel-driven methods
  (our fbp, iradon): their time is scaled by (2048^2 x 1501) / (1024^2 x 751)
  to the full size, which is exact for an ``N^2 x angles`` method.

Errors are the relative RMS difference to the phantom inside 95 % of the
reconstruction circle, on the same slice for every method; the references'
output orientation is matched to ours by trying the 8 flips/rotations.

    .venv/bin/python benchmarks/tomo.py [--quick] [--no-references] [--build-tomopy]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ENV = HERE / ".envs" / "tomo"
REFERENCE_PACKAGES = ["numpy", "astra-toolbox", "scikit-image"]
TOMOPY_ENV = HERE / ".envs" / "tomopy"
TOMOPY_TAG = "1.15.2"
TOMOPY_MIRROR = Path(os.environ.get("TOMOPY_SRC", "/work/.mirror/tomopy+tomopy/repo"))
# tomopy 1.15's setup.cfg: numpy~=1.12, scipy<1.14 (and what it imports at run time).
TOMOPY_PACKAGES = [
    "numpy<2",
    "scipy<1.14",
    "numexpr==2.*",
    "pywavelets==1.*",
    "scikit-image<0.25",
    "tifffile",
    "importlib_metadata",
]
REPEATS = 5  # timed runs per library, alternating; the best of each is compared
FC_OFFSET = 7.3  # find_center scan: axis this many px right of the detector middle


def rel_error(rec: np.ndarray, truth: np.ndarray) -> float:
    """Relative RMS error inside 95 % of the circle, after matching orientation (8 options)."""
    n = truth.shape[-1]
    x = np.arange(n) - (n - 1) / 2
    m = (x[None] ** 2 + x[:, None] ** 2) < (0.95 * n / 2) ** 2
    best = np.inf
    for k in range(4):
        for flip in (False, True):
            r = np.rot90(rec, k)
            r = r[:, ::-1] if flip else r
            best = min(best, float(np.sqrt(np.mean((r - truth)[m] ** 2) / np.mean(truth[m] ** 2))))
    return best


# ---------------------------------------------------------------- references (run in ENV)
def run_references(folder: Path) -> dict:
    """Time astra FBP (full size) and iradon (small size); runs inside the reference venv."""
    results = {}
    for tag in ("full", "small"):
        sino = np.load(folder / f"sino_{tag}.npy")  # (angles, N) line integrals, centred axis
        theta = np.load(folder / f"theta_{tag}.npy")
        if tag == "full":
            import astra  # noqa: PLC0415 - optional reference

            n = sino.shape[1]
            vol_geom = astra.create_vol_geom(n, n)
            proj_geom = astra.create_proj_geom("parallel", 1.0, n, theta)
            proj_id = astra.create_projector("linear", proj_geom, vol_geom)
            t0 = time.perf_counter()
            sino_id = astra.data2d.create("-sino", proj_geom, sino)
            rec_id = astra.data2d.create("-vol", vol_geom)
            cfg = astra.astra_dict("FBP")
            cfg.update(
                ReconstructionDataId=rec_id,
                ProjectionDataId=sino_id,
                ProjectorId=proj_id,
                option={"FilterType": "shepp-logan"},
            )
            alg = astra.algorithm.create(cfg)
            astra.algorithm.run(alg)
            rec = astra.data2d.get(rec_id)
            results["astra"] = {"seconds": time.perf_counter() - t0, "tag": tag, "version": astra.__version__}
            np.save(folder / "rec_astra.npy", rec.astype(np.float32))
        else:
            import skimage  # noqa: PLC0415 - optional reference
            from skimage.transform import iradon  # noqa: PLC0415 - optional reference

            t0 = time.perf_counter()
            rec = iradon(sino.T, theta=np.rad2deg(theta), filter_name="shepp-logan", circle=True)
            results["iradon"] = {"seconds": time.perf_counter() - t0, "tag": tag, "version": skimage.__version__}
            np.save(folder / "rec_iradon.npy", rec.astype(np.float32))
    return results


def run_tomopy(folder: Path) -> dict:
    """Time tomopy's gridrec (REPEATS runs) or find_center; runs inside the tomopy venv."""
    import tomopy  # noqa: PLC0415 - optional reference (built with --build-tomopy)

    task = json.loads((folder / "task.json").read_text())
    out = {"version": tomopy.__version__}
    theta = np.load(folder / "theta.npy")
    if task["what"] == "gridrec":
        proj = np.load(folder / "proj.npy")
        tomopy.recon(
            proj[:, :2], theta, center=task["center"], algorithm="gridrec", filter_name="shepp", ncore=task["ncore"]
        )  # warm up, as ours is
        times = []
        for _ in range(task["repeats"]):
            t0 = time.perf_counter()
            rec = tomopy.recon(
                proj, theta, center=task["center"], algorithm="gridrec", filter_name="shepp", ncore=task["ncore"]
            )
            times.append(time.perf_counter() - t0)
        np.save(folder / "rec_tomopy.npy", rec[0].astype(np.float32))
        out["seconds"] = times
    else:
        sino = np.load(folder / "sino_fc.npy")  # (angles, N)
        t0 = time.perf_counter()
        c = tomopy.find_center(sino[:, None, :], theta)
        out["seconds"] = [time.perf_counter() - t0]
        out["center"] = float(np.squeeze(c))
    return out


def build_tomopy_env() -> str | None:
    """Build tomopy from its source mirror into TOMOPY_ENV; None, or why it could not."""

    if not (TOMOPY_MIRROR / "HEAD").exists() and not (TOMOPY_MIRROR / ".git").exists():
        return f"no tomopy source at {TOMOPY_MIRROR} (set TOMOPY_SRC to a clone)"
    missing = [t for t in ("cmake", "ninja", "pkg-config", "cc") if not shutil.which(t)]
    if missing:
        return f"missing build tools: {', '.join(missing)} (apt-get install cmake ninja-build pkg-config gcc)"
    if subprocess.run(["pkg-config", "--exists", "fftw3f"]).returncode:
        return "FFTW (single precision) not found: apt-get install libfftw3-dev"
    work = Path(tempfile.mkdtemp(prefix="tomopy-build-"))
    src, build = work / "src", work / "build"
    steps = [
        ["git", "clone", "-q", "--branch", TOMOPY_TAG, str(TOMOPY_MIRROR), str(src)],
        [sys.executable, "-m", "venv", str(TOMOPY_ENV)],
        [
            "cmake",
            "-S",
            str(src),
            "-B",
            str(build),
            "-GNinja",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DTOMOPY_USE_MKL=OFF",
            "-DTOMOPY_USE_CUDA=OFF",
            "-DTOMOPY_USE_OPENCV=OFF",
            f"-DCMAKE_INSTALL_PREFIX={TOMOPY_ENV}",
            "-DCMAKE_INSTALL_LIBDIR=lib",
        ],
        ["cmake", "--build", str(build)],
        ["cmake", "--install", str(build)],
        [str(TOMOPY_ENV / "bin" / "python"), "-m", "pip", "install", "-q", *TOMOPY_PACKAGES],
        [str(TOMOPY_ENV / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(src)],
    ]
    print(f"building tomopy {TOMOPY_TAG} into {TOMOPY_ENV} (a few minutes) ...", file=sys.stderr)
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                return f"'{' '.join(step[:3])} ...' failed: {' / '.join(tail)}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return None


def tomopy_python(build: bool) -> tuple[Path | None, str]:
    """The tomopy venv's python (building it when asked or when the source is at hand)."""
    python = TOMOPY_ENV / "bin" / "python"
    lib = TOMOPY_ENV / "lib" / "libtomo-gridrec.so"
    if not (python.exists() and lib.exists()) and (build or TOMOPY_MIRROR.exists()):
        why = build_tomopy_env()
        if why:
            return None, why
    if not lib.exists():
        return None, f"no tomopy venv at {TOMOPY_ENV} (run with --build-tomopy)"
    return python, ""


def call_tomopy(python: Path, folder: Path, **task) -> dict:
    """Run :func:`run_tomopy` in the tomopy venv (its libtomo on the library path)."""
    (folder / "task.json").write_text(json.dumps(task))
    env = dict(os.environ, LD_LIBRARY_PATH=str(TOMOPY_ENV / "lib"))
    out = subprocess.run(
        [str(python), __file__, "--tomopy-run", str(folder)], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_reference_env() -> Path:
    """The reference venv's python, created with pip on first use."""
    python = ENV / "bin" / "python"
    if not python.exists():
        print(f"creating {ENV} with {' '.join(REFERENCE_PACKAGES)} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import astra, skimage"], capture_output=True)
    if probe.returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REFERENCE_PACKAGES], check=True)
    return python


# ---------------------------------------------------------------- ours
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a quarter of the sizes (smoke test)")
    parser.add_argument(
        "--no-references", action="store_true", help="skip astra and scikit-image (tomopy still runs where its venv is)"
    )
    parser.add_argument("--no-tomopy", action="store_true", help="skip tomopy")
    parser.add_argument(
        "--build-tomopy", action="store_true", help=f"build tomopy {TOMOPY_TAG} into {TOMOPY_ENV} if it is not there"
    )
    args = parser.parse_args()

    from beamhub.kernels import backend, sim  # noqa: PLC0415 - after the tomopy venv's re-run of this script, which has no BeamHub
    from beamhub.kernels import tomo as bt  # noqa: PLC0415 - after the tomopy venv's re-run of this script, which has no BeamHub
    from beamhub.kernels.tomo.gridrec import gridding_setup  # noqa: PLC0415 - after the tomopy venv's re-run of this script, which has no BeamHub

    scale_div = 4 if args.quick else 1
    full = dict(n=2048 // scale_div, n_angles=1501 // scale_div, rows=16)
    small = dict(n=1024 // scale_div, n_angles=751 // scale_div, rows=1)
    work_ratio = (full["n"] ** 2 * full["n_angles"]) / (small["n"] ** 2 * small["n_angles"])
    print(
        f"machine: {os.cpu_count()} CPUs ({backend.cpu_workers()} usable), backend "
        f"{backend.backend_name()}, load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )

    scans = {}
    for tag, size in (("full", full), ("small", small)):
        t0 = time.perf_counter()
        theta = np.linspace(0, np.pi, size["n_angles"], endpoint=False)
        # Noise-free line integrals, axis at the detector middle; two sub-samples per pixel.
        proj = sim.project_phantom(theta, size["n"], size["rows"], (size["n"] - 1) / 2, oversample=2)
        phantom = sim.shepp_logan_3d(size["n"], size["rows"], oversample=2)
        unit = 2.0 / proj.max()
        scans[tag] = (theta, (proj * unit).astype(np.float32), (phantom * unit).astype(np.float32))
        print(f"simulated {tag} scan {size} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    tomopy_py, why = (None, "--no-tomopy") if args.no_tomopy else tomopy_python(args.build_tomopy)
    if tomopy_py is None:
        print(f"tomopy skipped: {why}", file=sys.stderr)
    workers = backend.cpu_workers()

    rows = []
    theta, proj, phantom = scans["full"]
    n = full["n"]
    center = (n - 1) / 2  # the simulated axis; tomopy's gridrec gives `center` the same meaning
    t0 = time.perf_counter()
    gridding_setup(theta, n)
    setup = time.perf_counter() - t0
    bt.recon(proj[:, :2], theta, center=center, algorithm="gridrec")  # warm caches, compile
    ours_t, tomopy_t = [], []
    tomopy_info = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "proj.npy", proj)
        np.save(folder / "theta.npy", theta)
        for _ in range(REPEATS):  # alternate, so both see the same shared machine
            t0 = time.perf_counter()
            rec = bt.recon(proj, theta, center=center, algorithm="gridrec", ncore=workers)
            ours_t.append(time.perf_counter() - t0)
            if tomopy_py is not None:
                tomopy_info = call_tomopy(tomopy_py, folder, what="gridrec", repeats=1, center=center, ncore=workers)
                tomopy_t += tomopy_info["seconds"]
        if tomopy_py is not None:
            rec_t = np.load(folder / "rec_tomopy.npy")
    dt = min(ours_t)
    rows.append(
        dict(
            method="beamhub gridrec (shepp)",
            size="full",
            slices=full["rows"],
            seconds=dt,
            per_s=full["rows"] / dt,
            error=rel_error(rec[0], phantom[0]),
        )
    )
    if tomopy_t:
        dt_t = min(tomopy_t)
        rows.append(
            dict(
                method=f"tomopy {tomopy_info['version']} gridrec (shepp, ncore={workers})",
                size="full",
                slices=full["rows"],
                seconds=dt_t,
                per_s=full["rows"] / dt_t,
                error=rel_error(rec_t, phantom[0]),
            )
        )
    print(f"gridrec: one-off setup {setup:.2f} s for this geometry", file=sys.stderr)

    # find_center on one sinogram with the axis off the middle, same run.
    fc_true = (n - 1) / 2 + FC_OFFSET
    sino_fc = sim.project_phantom(theta, n, 1, fc_true, oversample=2)
    sino_fc = (sino_fc * (2.0 / sino_fc.max())).astype(np.float32)
    t0 = time.perf_counter()
    fc_ours = bt.find_center(sino_fc, theta)
    fc = {"ours": (time.perf_counter() - t0, fc_ours)}
    if tomopy_py is not None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            np.save(folder / "sino_fc.npy", sino_fc[:, 0, :])
            np.save(folder / "theta.npy", theta)
            r = call_tomopy(tomopy_py, folder, what="find_center")
            fc["tomopy"] = (r["seconds"][0], r["center"])

    theta_s, proj_s, phantom_s = scans["small"]
    t0 = time.perf_counter()
    rec_s = bt.recon(proj_s, theta_s, algorithm="fbp")
    dt = time.perf_counter() - t0
    rows.append(
        dict(
            method="beamhub fbp (shepp)",
            size="small, scaled",
            slices=1,
            seconds=dt * work_ratio,
            per_s=1 / (dt * work_ratio),
            error=rel_error(rec_s[0], phantom_s[0]),
        )
    )
    rec_gs = bt.recon(proj_s, theta_s, algorithm="gridrec")
    small_gridrec_error = rel_error(rec_gs[0], phantom_s[0])

    if not args.no_references:
        python = ensure_reference_env()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for tag in ("full", "small"):
                np.save(folder / f"sino_{tag}.npy", scans[tag][1][:, 0, :])
                np.save(folder / f"theta_{tag}.npy", scans[tag][0])
            out = subprocess.run(
                [str(python), __file__, "--reference-run", tmp], check=True, capture_output=True, text=True
            )
            ref = json.loads(out.stdout.strip().splitlines()[-1])
            a = ref["astra"]
            rows.append(
                dict(
                    method=f"astra-toolbox {a['version']} FBP CPU (shepp-logan)",
                    size="full",
                    slices=1,
                    seconds=a["seconds"],
                    per_s=1 / a["seconds"],
                    error=rel_error(np.load(folder / "rec_astra.npy"), phantom[0]),
                )
            )
            i = ref["iradon"]
            rows.append(
                dict(
                    method=f"scikit-image {i['version']} iradon (shepp-logan)",
                    size="small, scaled",
                    slices=1,
                    seconds=i["seconds"] * work_ratio,
                    per_s=1 / (i["seconds"] * work_ratio),
                    error=rel_error(np.load(folder / "rec_iradon.npy"), phantom_s[0]),
                )
            )

    ours = rows[0]["per_s"]
    print(
        f"\nfull = {full['n']} columns x {full['n_angles']} angles; small = {small['n']} x "
        f"{small['n_angles']} (time x {work_ratio:.2f})"
    )
    print(
        f"{'method':48s} {'size':15s} {'slices':>6s} {'s/slice':>8s} {'slices/s':>9s} {'gridrec x':>9s} {'error':>7s}"
    )
    for r in rows:
        print(
            f"{r['method']:48s} {r['size']:15s} {r['slices']:6d} {r['seconds'] / r['slices']:8.3f} "
            f"{r['per_s']:9.3f} {ours / r['per_s']:9.1f} {r['error']:7.4f}"
        )
    print(f"(our gridrec's error at the small size: {small_gridrec_error:.4f})")
    print(
        f"gridrec setup, once per geometry (angles, N), not in s/slice above: {setup:.2f} s; "
        f"per slice after it: {rows[0]['seconds'] / rows[0]['slices']:.3f} s"
    )
    per_slice = [f"{t / full['rows']:.3f}" for t in ours_t]
    print(f"gridrec runs, ours (s/slice): {' '.join(per_slice)}")
    if tomopy_t:
        per_slice = [f"{t / full['rows']:.3f}" for t in tomopy_t]
        print(f"gridrec runs, tomopy (s/slice): {' '.join(per_slice)}")
        print(
            f"gridrec speed, ours / tomopy (best of {REPEATS} each, alternating): "
            f"{min(tomopy_t) / min(ours_t):.2f}x; median against median: "
            f"{np.median(tomopy_t) / np.median(ours_t):.2f}x (aim >= 1.5x)"
        )
    for who, (secs, found) in fc.items():
        print(f"find_center {who:6s}: {secs:6.2f} s, axis {found:.3f}, error {found - fc_true:+.3f} px")
    if "tomopy" in fc:
        print(f"find_center time, ours / tomopy: {fc['ours'][0] / fc['tomopy'][0]:.2f} (aim <= 1)")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--tomopy-run":
        print(json.dumps(run_tomopy(Path(sys.argv[2]))))
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--reference-run":
        print(json.dumps(run_references(Path(sys.argv[2]))))
        sys.exit(0)
    sys.exit(main())
