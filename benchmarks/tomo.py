"""Tomography benchmark: slices per second and error against the phantom, ours beside references.

Our gridrec and fbp against astra-toolbox's CPU FBP and scikit-image's
``iradon`` (both from PyPI, installed by this script into
benchmarks/.envs/tomo), all on the same simulated Shepp-Logan scan, in the same
run.  tomopy is added where it imports.  Sizes:

* full: 2048 columns x 1501 angles x 16 rows (the issue's size); our gridrec
  reconstructs all 16 rows, astra one slice (13.5 s a slice here);
* small: 1024 columns x 751 angles, one slice, for the pixel-driven methods
  (our fbp, iradon): their time is scaled by (2048^2 x 1501) / (1024^2 x 751)
  to the full size, which is exact for an ``N^2 x angles`` method.

Errors are the relative RMS difference to the phantom inside 95 % of the
reconstruction circle, on the same slice for every method; the references'
output orientation is matched to ours by trying the 8 flips/rotations.

    .venv/bin/python benchmarks/tomo.py [--quick] [--no-references]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ENV = HERE / ".envs" / "tomo"
REFERENCE_PACKAGES = ["numpy", "astra-toolbox", "scikit-image"]


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
            import astra  # noqa: PLC0415

            n = sino.shape[1]
            vol_geom = astra.create_vol_geom(n, n)
            proj_geom = astra.create_proj_geom("parallel", 1.0, n, theta)
            proj_id = astra.create_projector("linear", proj_geom, vol_geom)
            t0 = time.perf_counter()
            sino_id = astra.data2d.create("-sino", proj_geom, sino)
            rec_id = astra.data2d.create("-vol", vol_geom)
            cfg = astra.astra_dict("FBP")
            cfg.update(ReconstructionDataId=rec_id, ProjectionDataId=sino_id, ProjectorId=proj_id,
                       option={"FilterType": "shepp-logan"})
            alg = astra.algorithm.create(cfg)
            astra.algorithm.run(alg)
            rec = astra.data2d.get(rec_id)
            results["astra"] = {"seconds": time.perf_counter() - t0, "tag": tag,
                                "version": astra.__version__}
            np.save(folder / "rec_astra.npy", rec.astype(np.float32))
        else:
            import skimage  # noqa: PLC0415
            from skimage.transform import iradon  # noqa: PLC0415

            t0 = time.perf_counter()
            rec = iradon(sino.T, theta=np.rad2deg(theta), filter_name="shepp-logan", circle=True)
            results["iradon"] = {"seconds": time.perf_counter() - t0, "tag": tag,
                                 "version": skimage.__version__}
            np.save(folder / "rec_iradon.npy", rec.astype(np.float32))
    return results


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
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a quarter of the sizes (smoke test)")
    parser.add_argument("--no-references", action="store_true", help="only our own figures")
    args = parser.parse_args()

    from beamhub.kernels import backend, sim  # noqa: PLC0415
    from beamhub.kernels import tomo as bt  # noqa: PLC0415
    from beamhub.kernels.tomo.gridrec import gridding_setup  # noqa: PLC0415

    scale_div = 4 if args.quick else 1
    full = dict(n=2048 // scale_div, n_angles=1501 // scale_div, rows=16)
    small = dict(n=1024 // scale_div, n_angles=751 // scale_div, rows=1)
    work_ratio = (full["n"] ** 2 * full["n_angles"]) / (small["n"] ** 2 * small["n_angles"])
    print(f"machine: {os.cpu_count()} CPUs ({backend.cpu_workers()} usable), backend "
          f"{backend.backend_name()}, load average {os.getloadavg()[0]:.2f}", file=sys.stderr)

    scans = {}
    for tag, size in (("full", full), ("small", small)):
        t0 = time.perf_counter()
        theta = np.linspace(0, np.pi, size["n_angles"], endpoint=False)
        # Noise-free line integrals, axis at the detector middle; two sub-samples per pixel.
        proj = sim.project_phantom(theta, size["n"], size["rows"], (size["n"] - 1) / 2,
                                   oversample=2)
        phantom = sim.shepp_logan_3d(size["n"], size["rows"], oversample=2)
        unit = 2.0 / proj.max()
        scans[tag] = (theta, (proj * unit).astype(np.float32), (phantom * unit).astype(np.float32))
        print(f"simulated {tag} scan {size} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    rows = []
    theta, proj, phantom = scans["full"]
    n = full["n"]
    t0 = time.perf_counter()
    gridding_setup(theta, n)
    setup = time.perf_counter() - t0
    bt.recon(proj[:, :2], theta, algorithm="gridrec")  # warm caches
    t0 = time.perf_counter()
    rec = bt.recon(proj, theta, algorithm="gridrec")
    dt = time.perf_counter() - t0
    rows.append(dict(method="beamhub gridrec (shepp)", size="full", slices=full["rows"],
                     seconds=dt, per_s=full["rows"] / dt, error=rel_error(rec[0], phantom[0])))
    print(f"gridrec: one-off gridding setup {setup:.1f} s for this geometry", file=sys.stderr)

    theta_s, proj_s, phantom_s = scans["small"]
    t0 = time.perf_counter()
    rec_s = bt.recon(proj_s, theta_s, algorithm="fbp")
    dt = time.perf_counter() - t0
    rows.append(dict(method="beamhub fbp (shepp)", size="small, scaled", slices=1,
                     seconds=dt * work_ratio, per_s=1 / (dt * work_ratio),
                     error=rel_error(rec_s[0], phantom_s[0])))
    rec_gs = bt.recon(proj_s, theta_s, algorithm="gridrec")
    small_gridrec_error = rel_error(rec_gs[0], phantom_s[0])

    try:
        import tomopy  # noqa: PLC0415

        t0 = time.perf_counter()
        rec_t = tomopy.recon(proj, theta, center=n / 2, algorithm="gridrec",
                             filter_name="shepp", ncore=backend.cpu_workers())
        dt = time.perf_counter() - t0
        rows.append(dict(method="tomopy gridrec", size="full", slices=full["rows"], seconds=dt,
                         per_s=full["rows"] / dt, error=rel_error(rec_t[0], phantom[0])))
    except ImportError:
        print("tomopy does not import here: skipped", file=sys.stderr)

    if not args.no_references:
        python = ensure_reference_env()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for tag in ("full", "small"):
                np.save(folder / f"sino_{tag}.npy", scans[tag][1][:, 0, :])
                np.save(folder / f"theta_{tag}.npy", scans[tag][0])
            out = subprocess.run([str(python), __file__, "--reference-run", tmp], check=True,
                                 capture_output=True, text=True)
            ref = json.loads(out.stdout.strip().splitlines()[-1])
            a = ref["astra"]
            rows.append(dict(method=f"astra-toolbox {a['version']} FBP CPU (shepp-logan)",
                             size="full", slices=1, seconds=a["seconds"], per_s=1 / a["seconds"],
                             error=rel_error(np.load(folder / "rec_astra.npy"), phantom[0])))
            i = ref["iradon"]
            rows.append(dict(method=f"scikit-image {i['version']} iradon (shepp-logan)",
                             size="small, scaled", slices=1, seconds=i["seconds"] * work_ratio,
                             per_s=1 / (i["seconds"] * work_ratio),
                             error=rel_error(np.load(folder / "rec_iradon.npy"), phantom_s[0])))

    ours = rows[0]["per_s"]
    print(f"\nfull = {full['n']} columns x {full['n_angles']} angles; small = {small['n']} x "
          f"{small['n_angles']} (time x {work_ratio:.2f})")
    print(f"{'method':48s} {'size':15s} {'slices':>6s} {'s/slice':>8s} {'slices/s':>9s} "
          f"{'gridrec x':>9s} {'error':>7s}")
    for r in rows:
        print(f"{r['method']:48s} {r['size']:15s} {r['slices']:6d} {r['seconds'] / r['slices']:8.3f} "
              f"{r['per_s']:9.3f} {ours / r['per_s']:9.1f} {r['error']:7.4f}")
    print(f"(our gridrec's error at the small size: {small_gridrec_error:.4f})")
    print(f"gridrec setup, once per geometry (angles, N), not in s/slice above: {setup:.2f} s; "
          f"per slice after it: {rows[0]['seconds'] / rows[0]['slices']:.3f} s")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--reference-run":
        print(json.dumps(run_references(Path(sys.argv[2]))))
        sys.exit(0)
    sys.exit(main())
