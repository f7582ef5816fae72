"""``beamhub simulate spi|tomo ...``: the kernels' simulated data with ground truth.

``beamhub simulate KIND`` is routed by :mod:`beamhub.cli` to the package that
simulates KIND; the kernels' kinds are here: ``spi`` (single-particle frames for
EMC) and ``tomo`` (a Data Exchange scan).  The scheduler's ``cluster`` is in
:mod:`beamhub.scheduler.commands.simulate`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from beamhub.errors import UsageError
from beamhub.kernels import memory
from beamhub.kernels.emc.detector import model_size
from beamhub.kernels.sim.spi import simulate_spi, spi_detector, write_spi
from beamhub.kernels.sim.tomo import simulate_scan, truth_path, write_scan

SPI_DESCRIPTION = """\
Simulate single-particle imaging data with ground truth and write a folder that
Dragonfly's emc and `beamhub emc` both read: config.ini (with
make_data:::out_photons_file references), det.dat (or det.h5), photons.emc (or
photons.h5), the true intensity.bin and density.bin (float64 cubes),
true_quaternions.dat (each frame's orientation) and an empty data/ folder."""

SPI_EPILOG = """\
examples:
  beamhub simulate spi demo/
  beamhub simulate spi demo/ --num-data 6000 --detsize 75 --mean-count 300 --num-div 8
  beamhub simulate spi demo/ --hdf5 --scale-spread 0.2      # HDF5 files, varying fluence"""


def main(argv: list[str], prog: str) -> int:
    """``beamhub simulate spi|tomo ...`` (``argv`` starts with the kind); returns the exit status."""
    kinds = {"spi": spi_main, "tomo": tomo_main}
    if not argv or argv[0] not in kinds:
        raise UsageError(f"unknown kind {argv[0] if argv else ''!r}; this module simulates: {', '.join(kinds)}")
    return kinds[argv[0]](argv[1:], f"{prog} {argv[0]}")


def _spi_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=SPI_DESCRIPTION, epilog=SPI_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folder", metavar="FOLDER", help="output folder (created)")
    p.add_argument("--num-data", type=int, default=1000, metavar="N", help="frames (default 1000)")
    p.add_argument("--detsize", type=int, default=25, metavar="PIX", help="detector pixels per side (default 25)")
    p.add_argument(
        "--detd", type=float, default=None, metavar="PIX", help="detector distance in pixels (default 2 x detsize)"
    )
    p.add_argument(
        "--stoprad",
        type=float,
        default=1.5,
        metavar="PIX",
        help="beamstop radius in pixels, mask 2 inside (default 1.5)",
    )
    p.add_argument(
        "--mean-count", type=float, default=300.0, metavar="PHOTONS", help="mean photons per frame (default 300)"
    )
    p.add_argument(
        "--diameter",
        type=float,
        default=None,
        metavar="VOXELS",
        help="object diameter in voxels (default: model edge / 4.5)",
    )
    p.add_argument(
        "--scale-spread",
        type=float,
        default=0.0,
        metavar="FRAC",
        help="relative spread of per-frame fluence (default 0; >0 sets need_scaling = 1)",
    )
    p.add_argument("--num-div", type=int, default=5, metavar="N", help="num_div written into [emc] (default 5)")
    p.add_argument("--beta", default="0.2", help="[emc] beta (default 0.2; 'auto' = Dragonfly's rule)")
    p.add_argument(
        "--beta-schedule", default="2 4", metavar="'JUMP PERIOD'", help="[emc] beta_schedule (default '2 4')"
    )
    p.add_argument("--hdf5", action="store_true", help="write detector and photons as HDF5")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh entropy)")
    return p


def spi_main(argv: list[str], prog: str) -> int:
    """``beamhub simulate spi``: write a simulated Dragonfly reconstruction folder."""
    args = _spi_parser(prog).parse_args(argv)
    for name in ("num_data", "detsize", "num_div"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.mean_count <= 0:
        raise UsageError("--mean-count must be positive")
    if os.path.exists(args.folder) and not os.path.isdir(args.folder):
        raise UsageError(f"FOLDER {args.folder!r} is a file; give a folder (it is created)")
    try:
        jump, period = args.beta_schedule.split()
        schedule = (float(jump), int(period))
    except ValueError:
        raise UsageError(f"--beta-schedule {args.beta_schedule!r}: give 'JUMP PERIOD', e.g. '2 4'") from None
    if args.beta != "auto":
        try:
            float(args.beta)
        except ValueError:
            raise UsageError(f"--beta {args.beta!r}: a number or auto") from None
    check_spi_memory(args.num_data, args.detsize, args.num_div)

    detd = args.detd or 2.0 * args.detsize
    if args.diameter is None:
        det = spi_detector(args.detsize, detd, args.stoprad)
        diameter = model_size(det.q, det.mask) / 4.5
    else:
        diameter = args.diameter
    print(f"simulating {args.num_data} frames on a {args.detsize}x{args.detsize} detector ...", file=sys.stderr)
    sim = simulate_spi(
        num_data=args.num_data,
        detsize=args.detsize,
        detd=detd,
        stoprad=args.stoprad,
        mean_count=args.mean_count,
        diameter=diameter,
        scale_spread=args.scale_spread,
        rng=args.seed,
    )
    cfg = write_spi(args.folder, sim, num_div=args.num_div, hdf5=args.hdf5, beta=args.beta, beta_schedule=schedule)
    print(f"wrote {cfg}  (model edge {sim.intensity.shape[0]}, {sim.photons.num_data} frames)", file=sys.stderr)
    print(cfg)
    return 0


TOMO_DESCRIPTION = """\
Simulate a parallel-beam tomography scan of the 3-D Shepp-Logan phantom and write
it as Data Exchange HDF5 (/exchange/data, data_white, data_dark, theta in radians),
as a beamline would: raw counts with flat and dark fields, Poisson noise and a
rotation axis off the detector middle, so `beamhub tomo --center auto` has work
to do.  The ground truth (the phantom's slices and the true axis) goes beside it
in SCAN-truth.h5.  FOLDER_OR_FILE ending in .h5 (or .hdf5) is the scan file;
anything else is a folder (created) that gets scan.h5."""

TOMO_EPILOG = """\
examples:
  beamhub simulate tomo demo/                       # demo/scan.h5 and demo/scan-truth.h5
  beamhub simulate tomo scan.h5 --size 256 --angles 360 --center-offset -7.5
  beamhub simulate tomo rings.h5 --stripes 6        # columns with gain errors: rings
  beamhub tomo demo/scan.h5 --out recon.h5          # then reconstruct it"""

#: What ``FOLDER_OR_FILE`` ends with when it names the scan file itself.
SCAN_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")


def _tomo_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=TOMO_DESCRIPTION,
        epilog=TOMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="FOLDER_OR_FILE", help="scan file (.h5) or folder (created)")
    p.add_argument(
        "--size", type=int, default=128, metavar="N", help="detector columns; slices are N x N (default 128)"
    )
    p.add_argument("--rows", type=int, default=8, metavar="R", help="detector rows (slices, default 8)")
    p.add_argument("--angles", type=int, default=180, metavar="A", help="projections over 180 degrees (default 180)")
    p.add_argument(
        "--center-offset",
        type=float,
        default=3.5,
        metavar="PIX",
        help="rotation axis minus the detector middle (N-1)/2, pixels (default 3.5)",
    )
    p.add_argument(
        "--photons",
        type=float,
        default=2e4,
        metavar="COUNTS",
        help="mean open-beam counts per pixel (default 20000; fewer = noisier)",
    )
    p.add_argument("--flats", type=int, default=10, metavar="K", help="flat fields (default 10)")
    p.add_argument("--darks", type=int, default=10, metavar="K", help="dark fields (default 10)")
    p.add_argument(
        "--stripes",
        type=int,
        default=0,
        metavar="K",
        help="detector columns with a gain error, which draw rings (default 0)",
    )
    p.add_argument("--no-noise", action="store_true", help="expected counts, no noise")
    p.add_argument("--no-truth", action="store_true", help="do not write SCAN-truth.h5")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh entropy)")
    return p


def tomo_scan_path(target: str) -> Path:
    """The scan file ``FOLDER_OR_FILE`` names: itself if it ends in .h5 (or alike), else ``target/scan.h5``."""
    path = Path(target)
    return path if path.suffix.lower() in SCAN_SUFFIXES else path / "scan.h5"


def tomo_main(argv: list[str], prog: str) -> int:
    """``beamhub simulate tomo``: write a simulated Data Exchange scan and its ground truth."""
    args = _tomo_parser(prog).parse_args(argv)
    for name, least in (("size", 8), ("rows", 1), ("angles", 2), ("flats", 1), ("darks", 1)):
        if getattr(args, name) < least:
            raise UsageError(f"--{name} must be at least {least}")
    if args.stripes < 0 or args.stripes > args.size:
        raise UsageError(f"--stripes must be between 0 and --size ({args.size})")
    if args.photons <= 0:
        raise UsageError("--photons must be positive")
    if abs(args.center_offset) >= args.size / 4:
        raise UsageError(
            f"--center-offset {args.center_offset:g}: keep the axis within a quarter "
            f"of the detector of its middle (|offset| < {args.size / 4:g})"
        )
    path = tomo_scan_path(args.target)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name ending in .h5 or a folder to write scan.h5 in")
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"simulating {args.angles} projections of {args.rows} rows x {args.size} columns ...", file=sys.stderr)
    scan = simulate_scan(
        n=args.size,
        rows=args.rows,
        n_angles=args.angles,
        center_offset=args.center_offset,
        photons=args.photons,
        noise=not args.no_noise,
        n_flat=args.flats,
        n_dark=args.darks,
        stripe_columns=args.stripes,
        seed=args.seed,
    )
    write_scan(path, scan, truth=not args.no_truth)
    truth = "" if args.no_truth else f", truth in {truth_path(path)}"
    print(f"wrote {path}  (rotation axis at column {scan.center:g}{truth})", file=sys.stderr)
    print(f"reconstruct it: beamhub tomo {path} --out recon.h5", file=sys.stderr)
    print(path)
    return 0


def spi_memory_estimate(num_data: int, detsize: int) -> dict[str, float]:
    """Bytes ``beamhub simulate spi`` needs, by cause.

    ``"frames"``: the dense frames (int32), their expected counts, the Poisson
    means and draws (float64, int64) before they are made sparse;
    ``"detector"``: the pixel tables and the model cube, whose edge is at most
    ``2 ceil(detsize / sqrt 2) + 3`` (the corner pixel's q), with its FFT.
    """
    pixels = float(detsize) ** 2
    edge = 2 * math.ceil(detsize / math.sqrt(2)) + 3
    return {
        "frames": 28.0 * num_data * pixels,
        "detector": 100.0 * pixels + 48.0 * float(edge) ** 3,
    }


def emc_probability_bytes(num_div: int, num_data: int) -> float:
    """Bytes of the orientation x frame probability table ``beamhub emc`` keeps for this data."""
    rotations = 10 * (5 * num_div**3 + num_div)  # quaternions.num_rotations
    return 8.0 * rotations * num_data


def check_spi_memory(num_data: int, detsize: int, num_div: int) -> None:
    """Refuse a simulation (or the EMC run its config asks for) that would not fit in memory."""
    parts = spi_memory_estimate(num_data, detsize)
    if parts["frames"] >= parts["detector"]:
        what = f"--num-data={num_data} on a {detsize}x{detsize} detector"
    else:
        what = f"--detsize={detsize}"
    memory.require(sum(parts.values()), what)
    rotations = 10 * (5 * num_div**3 + num_div)
    memory.require(
        emc_probability_bytes(num_div, num_data),
        f"--num-div={num_div} ({rotations} orientations x {num_data} frames in beamhub emc)",
    )
