"""``beamhub simulate KIND ...``: simulated data with ground truth, one kind per subcommand.

Kinds live in their own packages and are imported only when asked for:
``spi`` (single-particle frames for EMC, here) and ``cluster`` (the scheduler's cluster
simulator, ``beamhub.scheduler.simulate.main``).  A new kind is one entry in KINDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from beamhub.errors import UsageError

# kind -> (module, function, one-line help)
KINDS: dict[str, tuple[str, str, str]] = {
    "spi": ("beamhub.kernels.commands.simulate", "spi_main",
            "single-particle imaging frames in Dragonfly's formats (for `beamhub emc`)"),
    "cluster": ("beamhub.scheduler.simulate", "main",
                "replay sessions on a simulated cluster to compare placement policies"),
}

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


def _usage() -> str:
    width = max(len(k) for k in KINDS)
    lines = ["usage: beamhub simulate KIND [ARGS...]", "", "kinds:"]
    lines += [f"  {k:<{width}}  {text}" for k, (_, _, text) in KINDS.items()]
    lines += ["", "Run 'beamhub simulate KIND --help' for the options of one kind."]
    return "\n".join(lines)


def main(argv: list[str], prog: str) -> int:
    """Dispatch ``beamhub simulate KIND ...``; returns the exit status."""
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    kind, rest = argv[0], argv[1:]
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    module_name, func, _ = KINDS[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UsageError(f"'{kind}' needs {exc.name}, which is not installed here") from None
    return int(getattr(module, func)(rest, f"{prog} {kind}") or 0)


def _spi_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=SPI_DESCRIPTION, epilog=SPI_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="FOLDER", help="output folder (created)")
    p.add_argument("--num-data", type=int, default=1000, metavar="N", help="frames (default 1000)")
    p.add_argument("--detsize", type=int, default=25, metavar="PIX",
                   help="detector pixels per side (default 25)")
    p.add_argument("--detd", type=float, default=None, metavar="PIX",
                   help="detector distance in pixels (default 2 x detsize)")
    p.add_argument("--stoprad", type=float, default=1.5, metavar="PIX",
                   help="beamstop radius in pixels, mask 2 inside (default 1.5)")
    p.add_argument("--mean-count", type=float, default=300.0, metavar="PHOTONS",
                   help="mean photons per frame (default 300)")
    p.add_argument("--diameter", type=float, default=None, metavar="VOXELS",
                   help="object diameter in voxels (default: model edge / 4.5)")
    p.add_argument("--scale-spread", type=float, default=0.0, metavar="FRAC",
                   help="relative spread of per-frame fluence (default 0; >0 sets need_scaling = 1)")
    p.add_argument("--num-div", type=int, default=5, metavar="N",
                   help="num_div written into [emc] (default 5)")
    p.add_argument("--beta", default="0.2", help="[emc] beta (default 0.2; 'auto' = Dragonfly's rule)")
    p.add_argument("--beta-schedule", default="2 4", metavar="'JUMP PERIOD'",
                   help="[emc] beta_schedule (default '2 4')")
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
    from beamhub.kernels.emc.detector import model_size  # noqa: PLC0415
    from beamhub.kernels.sim.spi import simulate_spi, spi_detector, write_spi  # noqa: PLC0415

    detd = args.detd or 2.0 * args.detsize
    if args.diameter is None:
        det = spi_detector(args.detsize, detd, args.stoprad)
        diameter = model_size(det.q, det.mask) / 4.5
    else:
        diameter = args.diameter
    print(f"simulating {args.num_data} frames on a {args.detsize}x{args.detsize} detector ...",
          file=sys.stderr)
    sim = simulate_spi(num_data=args.num_data, detsize=args.detsize, detd=detd, stoprad=args.stoprad,
                       mean_count=args.mean_count, diameter=diameter,
                       scale_spread=args.scale_spread, rng=args.seed)
    cfg = write_spi(args.folder, sim, num_div=args.num_div, hdf5=args.hdf5, beta=args.beta,
                    beta_schedule=schedule)
    print(f"wrote {cfg}  (model edge {sim.intensity.shape[0]}, "
          f"{sim.photons.num_data} frames)", file=sys.stderr)
    print(cfg)
    return 0
