"""``beamhub emc``: EMC orientation recovery from a Dragonfly config.ini, on 1 or N MPI ranks."""

from __future__ import annotations

import argparse
import logging
import sys

from beamhub.errors import UsageError
from beamhub.kernels.emc import EMC, run
from beamhub.kernels.emc.config import EMCConfig, load_problem
from beamhub.kernels.emc.mpi import get_comm
from beamhub.kernels.io.atomic import InputFormatError

DESCRIPTION = """\
Reconstruct a 3-D diffraction intensity from sparse single-particle photon frames
with Expand-Maximize-Compress, reading Dragonfly's config.ini unchanged: the [emc]
keys (in_photons_file, in_detector_file, num_div or in_quat_file, output_folder,
log_file, need_scaling, beta, beta_factor, beta_schedule, fixed_seed, ...) keep
Dragonfly's meanings, paths are relative to the config's folder, and
make_data:::out_photons_file style references work.  Every iteration writes
output_NNN.h5 (intens, inter_weight, orientations, likelihood, mutual_info, scale)
into output_folder, a row of the EMC.log table, and a checkpoint; --resume
continues a stopped run.  Under `mpiexec -n N` the frames are split across the
ranks (results agree with one rank up to rounding); each rank uses
BEAMHUB_THREADS (or NUMBA_NUM_THREADS) threads; BEAMHUB_BACKEND=cupy runs on a GPU."""

EPILOG = """\
examples:
  beamhub emc config.ini --iterations 30
  beamhub emc config.ini --iterations 50 --resume      # continue a stopped run to 50
  mpiexec -n 4 beamhub emc config.ini --iterations 30
  beamhub simulate spi demo/ && beamhub emc demo/config.ini -n 20

--iterations N is the last iteration number to reach: rerunning a killed job
with --resume finishes it (Dragonfly's `emc -r N` instead adds N iterations)."""


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("config", metavar="CONFIG", help="Dragonfly-style config.ini with an [emc] section")
    p.add_argument("--iterations", "-n", type=int, required=True, metavar="N", help="last iteration number to reach")
    p.add_argument("--resume", "-r", action="store_true", help="continue from output_folder/emc_checkpoint.h5")
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no per-iteration lines on stderr (EMC.log is written regardless)"
    )
    return p


def _log_to_stderr() -> None:
    """Send the EMC logger's INFO lines (the per-iteration figures) to stderr, once."""
    logger = logging.getLogger("beamhub.kernels.emc")
    if not any(getattr(h, "_beamhub_emc", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._beamhub_emc = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The options of this command; ``beamhub submit`` checks a job's options with it."""
    return _parser(prog)


def main(argv: list[str], prog: str) -> int:
    """Run ``beamhub emc``; returns the exit status."""
    args = _parser(prog).parse_args(argv)
    if args.iterations < 1:
        raise UsageError("--iterations must be at least 1")
    comm = get_comm()
    if not args.quiet and comm.rank == 0:
        _log_to_stderr()
    try:
        cfg = EMCConfig.from_file(args.config)
        detector, frames, quats, weights, model, scale = load_problem(cfg)
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{args.config}: a file it reads is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except InputFormatError as exc:
        raise UsageError(str(exc)) from None
    emc = EMC(detector, frames, quats, weights, cfg.settings(), comm=comm, model=model, scale=scale)
    try:
        run(
            emc,
            args.iterations,
            output_folder=cfg.output_folder,
            log_file=cfg.log_file,
            resume=args.resume,
            progress=not args.quiet and comm.rank == 0 and sys.stderr.isatty(),
        )
    except InputFormatError as exc:
        raise UsageError(str(exc)) from None
    return 0
