"""``beamhub tomo``: reconstruct a Data Exchange scan into float32 slices, a slab of rows at a time."""

from __future__ import annotations

import argparse
import sys
import time

from beamhub.errors import UsageError
from beamhub.kernels import backend, memory
from beamhub.kernels import tomo as bt
from beamhub.kernels.emc.mpi import get_comm
from beamhub.kernels.io import InputFormatError, check_output_path
from beamhub.kernels.io.dxchange import DataExchangeScan, ReconWriter
from beamhub.kernels.tomo import ALGORITHMS, FILTER_NAMES, STRIPE_METHODS
from beamhub.kernels.tomo.pipeline import line_integrals, reconstruct_slabs

DESCRIPTION = """\
Reconstruct a parallel-beam scan stored as Data Exchange HDF5 (/exchange/data,
/exchange/data_white, /exchange/data_dark, /exchange/theta in radians) into
float32 slices in /exchange/data of RECON.h5, with the parameters used in
/process/tomo.  Rows are read, flat/dark-corrected, -log'ed, optionally
de-striped and reconstructed a slab at a time, so scans larger than memory
work.  The output file appears only when every slice is written.  Under
`mpiexec -n N` the slabs are shared among the ranks (slab i on rank i % N) and
rank 0 writes them: the output is identical to one process's."""

EPILOG = """\
examples:
  beamhub tomo scan.h5 --out recon.h5
  beamhub tomo scan.h5 --out recon.h5 --center 1021.25 --rows 500:516
  beamhub tomo scan.h5 --out recon.h5 --algorithm sirt --num-iter 100 --stripe sorting
  beamhub tomo scan.h5 --out recon.h5 --center entropy --filter hann --circ-mask
  mpiexec -n 4 beamhub tomo scan.h5 --out recon.h5 --chunk-rows 8

--center: 'auto' or 'vo' = Vo's Fourier method on the middle row of --rows;
'entropy' = tomopy-style entropy minimisation; a number = the rotation-axis
column in pixels ((columns-1)/2 is the detector middle)."""


def _parser(prog: str) -> argparse.ArgumentParser:

    p = argparse.ArgumentParser(
        prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("scan", metavar="SCAN.h5", help="Data Exchange scan to reconstruct")
    p.add_argument("--out", "-o", required=True, metavar="RECON.h5", help="output HDF5 file")
    p.add_argument("--center", default="auto", metavar="auto|vo|entropy|X", help="rotation axis (default: auto)")
    p.add_argument(
        "--algorithm", default="gridrec", choices=ALGORITHMS, help="reconstruction algorithm (default: gridrec)"
    )
    p.add_argument(
        "--filter",
        dest="filter_name",
        default="shepp",
        choices=FILTER_NAMES,
        help="filter for gridrec and fbp (default: shepp)",
    )
    p.add_argument("--num-iter", type=int, default=50, metavar="N", help="SIRT iterations (default: 50)")
    p.add_argument(
        "--rows", default=None, metavar="A:B", help="detector rows to reconstruct, Python slice style (default: all)"
    )
    p.add_argument(
        "--chunk-rows", type=int, default=16, metavar="K", help="rows read and reconstructed per slab (default: 16)"
    )
    p.add_argument(
        "--stripe",
        default="none",
        choices=("none",) + STRIPE_METHODS,
        help="ring-artefact (stripe) removal before reconstruction (default: none)",
    )
    p.add_argument("--circ-mask", action="store_true", help="zero everything outside the reconstruction circle")
    p.add_argument("--degrees", action="store_true", help="/exchange/theta is in degrees (convert instead of refusing)")
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bar and no report lines (axis found, slices written)"
    )
    return p


def parse_rows(text: str | None, n_rows: int) -> tuple[int, int]:
    """``"a:b"`` (either side optional, negatives count from the end) -> ``(start, stop)``."""
    if text is None:
        return 0, n_rows
    parts = text.split(":")
    if len(parts) != 2:
        raise UsageError(f"--rows {text!r}: expected A:B, e.g. 100:116")
    try:
        bounds = [int(x) if x.strip() else None for x in parts]
    except ValueError:
        raise UsageError(f"--rows {text!r}: A and B must be integers") from None
    start, stop, _ = slice(*bounds).indices(n_rows)
    if stop <= start:
        raise UsageError(f"--rows {text!r} selects no rows of the scan's {n_rows}")
    return start, stop


def _find_center(scan, how: str, start: int, stop: int, stripe: str) -> float:

    row = (start + stop) // 2
    proj = line_integrals(*scan.read_rows(row, row + 1), stripe)
    if how in ("auto", "vo"):
        return bt.find_center_vo(proj, theta=scan.theta)
    return bt.find_center(proj, scan.theta)


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The options of this command; ``beamhub submit`` checks a job's options with it."""
    return _parser(prog)


def main(argv: list[str], prog: str) -> int:
    """Run ``beamhub tomo``; returns the exit status."""
    args = _parser(prog).parse_args(argv)

    center_mode = args.center.strip().lower()
    fixed_center = None
    if center_mode not in ("auto", "vo", "entropy"):
        try:
            fixed_center = float(center_mode)
        except ValueError:
            raise UsageError(f"--center {args.center!r}: give auto, vo, entropy or a number") from None
    if args.chunk_rows < 1:
        raise UsageError("--chunk-rows must be at least 1")
    if args.num_iter < 1:
        raise UsageError("--num-iter must be at least 1")
    try:
        check_output_path(args.out)
    except InputFormatError as exc:
        raise UsageError(f"--out: {exc}") from None

    try:
        scan = DataExchangeScan(args.scan, degrees=args.degrees)
    except InputFormatError as exc:
        raise UsageError(str(exc)) from None
    with scan:
        n_angles, n_rows, n_cols = scan.shape
        start, stop = parse_rows(args.rows, n_rows)
        check_memory(n_angles, n_cols, min(args.chunk_rows, stop - start), args.algorithm)
        if fixed_center is not None and not 0 <= fixed_center <= n_cols - 1:
            raise UsageError(f"--center {fixed_center}: outside the detector's {n_cols} columns")
        comm = get_comm()
        # Facts (the axis found, what was written) go to stderr unless -q, terminal or not: in a batch
        # job that is the log.  Only the progress bar needs a terminal, and only rank 0 reports.
        tell = not args.quiet and comm.rank == 0
        bar = tell and sys.stderr.isatty()
        t0 = time.perf_counter()
        center = fixed_center
        if center is None:
            # every rank finds the same axis from the same row: no broadcast to hang on
            try:
                center = _find_center(scan, center_mode, start, stop, args.stripe)
            except InputFormatError as exc:
                raise UsageError(str(exc)) from None
            if tell:
                print(
                    f"{prog}: rotation axis at column {center:.2f} ({center_mode}, found on row "
                    f"{(start + stop) // 2} of {n_rows})",
                    file=sys.stderr,
                    flush=True,
                )
        params = {
            "source": str(scan.path),
            "algorithm": args.algorithm,
            "center": float(center),
            "center_method": center_mode if fixed_center is None else "given",
            "filter_name": args.filter_name,
            "rows": [start, stop],
            "angles": n_angles,
            "stripe": args.stripe,
            "circ_mask": bool(args.circ_mask),
            "backend": backend.backend_name(),
            "ranks": comm.size,
            "chunk_rows": args.chunk_rows,
        }
        if args.algorithm == "sirt":
            params["num_iter"] = args.num_iter
        options = dict(
            rows=(start, stop),
            slab_rows=args.chunk_rows,
            stripe=args.stripe,
            algorithm=args.algorithm,
            filter_name=args.filter_name,
            num_iter=args.num_iter,
            circ_mask=args.circ_mask,
            progress=bar,
            comm=comm if comm.size > 1 else None,
        )
        try:
            if comm.rank == 0:
                with ReconWriter(args.out, (stop - start, n_cols, n_cols), params) as out:
                    reconstruct_slabs(scan, center, out=out, **options)
                    out.update_parameters({"seconds": round(time.perf_counter() - t0, 3)})
            else:
                reconstruct_slabs(scan, center, **options)
        except InputFormatError as exc:
            raise UsageError(str(exc)) from None
    if comm.rank != 0:
        return 0
    if not args.quiet:
        print(
            f"{prog}: wrote {stop - start} slices of {n_cols}x{n_cols} to {args.out} "
            f"in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
    return 0


def memory_estimate(n_angles: int, n_cols: int, chunk_rows: int, algorithm: str) -> tuple[float, float]:
    """``(fixed, per_row)`` bytes of one process reconstructing slabs of ``chunk_rows`` rows.

    Per row: the projections, flat/dark-corrected and -log'ed copies (float32),
    the slice (float32) and the algorithm's work arrays — for gridrec the
    padded spectra and the complex grid (m = 2N padded columns); fixed: the
    precomputed operator — gridrec's gridding matrix (16 taps per polar
    sample, built once), SIRT's sparse projector and its transpose (about 2
    pixels per angle per slice pixel).
    """
    a, n = float(n_angles), float(n_cols)
    m = 2.0 * n
    per_row = 3 * 4 * a * n + 4 * n * n
    if algorithm == "gridrec":
        fixed = 2 * 16 * 8 * a * m
        per_row += 8 * a * (m / 2 + 1) + 4 * a * m + 8 * m * m
    elif algorithm == "sirt":
        fixed = 2 * 2 * 8 * a * n * n
        per_row += 3 * 4 * n * n + 4 * a * n
    else:  # fbp: filtered sinogram and the back-projection's per-angle temporaries
        fixed = 0.0
        per_row += 4 * a * m + 3 * 4 * n * n
    return fixed, per_row


def check_memory(n_angles: int, n_cols: int, chunk_rows: int, algorithm: str) -> None:
    """Refuse a reconstruction whose estimate exceeds the memory available, naming the option."""
    fixed, per_row = memory_estimate(n_angles, n_cols, chunk_rows, algorithm)
    available = memory.available_bytes()
    scan = f"{n_angles} angles x {n_cols} columns"
    advice = (
        "reconstruct fewer columns or angles, or use a machine with more memory"
        if algorithm == "gridrec"
        else "choose gridrec, or a machine with more memory"
    )
    memory.require(fixed + per_row, f"--algorithm {algorithm} at {scan}", advice, available=available)
    fits = int((available - fixed) // per_row) if available is not None else chunk_rows
    memory.require(
        fixed + chunk_rows * per_row,
        f"--chunk-rows={chunk_rows} at {scan}",
        f"lower it (at most {fits} fits)",
        available=available,
    )
