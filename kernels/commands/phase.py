"""``beamhub phase JOB.json``: run a phasing job and write its results as HDF5."""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import sys
import time
from pathlib import Path

import numpy as np

from beamhub import __version__
from beamhub.errors import UsageError
from beamhub.kernels import backend, memory
from beamhub.kernels.io import InputFormatError, check_output_path
from beamhub.kernels.io.volumes import read_volume, write_h5
from beamhub.kernels.phasing import phase
from beamhub.kernels.phasing.job import JOB_KEYS, JobError, parse_job
from beamhub.kernels.phasing.retrieval import PRTF_SOLUTIONS

DESCRIPTION = """\
Iterative phase retrieval (ER, HIO, RAAR; static or shrink-wrap support) of a
2D or 3D intensity, from many random starts ranked by Fourier error.  The job
is a JSON object; relative paths in it are taken from the job file's folder.
The results are written atomically to "out_file" (HDF5): images (best first,
centred), scores (all starts, ascending), supports, prtf, and the job itself as
the attribute "job".  See docs/phasing.md for every key.
"""

EXAMPLE = """\
example job:
  {
    "srand": 1,
    "data": "recon_0002/data/output/intens_010.bin",
    "data_dim": "3d",
    "number_of_outputs_images": 2,
    "number_of_outputs_scores": 10,
    "support_algo": "static",
    "support_size": 30,
    "algo": [
      {"name": "hio", "number_of_iterations": 500, "beta_init": 0.9, "beta_final": 0.9},
      {"name": "er", "number_of_iterations": 100}
    ],
    "out_file": "recon_0002/phased_output.h5"
  }

examples:
  beamhub phase job.json                 run it, progress on stderr
  beamhub phase job.json --check         validate the job and its input, run nothing
  BEAMHUB_BACKEND=numpy beamhub phase job.json   force the CPU
"""


def _keys_help() -> str:

    width = max(map(len, JOB_KEYS))
    lines = ["job keys (* = required):"]
    for key, (required, text) in JOB_KEYS.items():
        lines.append(f"  {key:<{width}} {'*' if required else ' '} {text}")
    return "\n".join(lines) + "\n\n"


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=_keys_help() + EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("job", type=Path, help="the JSON job file")
    parser.add_argument("--check", action="store_true", help="validate the job and read its input, then stop")
    parser.add_argument(
        "--backend",
        choices=("auto", "numpy", "cupy"),
        default=None,
        help="where to compute (default: $BEAMHUB_BACKEND, else auto)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar and no summary (what runs, seed, time, best errors)"
    )
    return parser


def load_job(path: Path):
    """Read and validate the job file; every problem becomes one UsageError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise UsageError(f"job file {str(path)!r} is a folder; give the JSON file") from None
    except OSError as exc:
        raise UsageError(f"cannot read job file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start}); save the job as UTF-8 JSON") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON: {exc}") from exc
    try:
        return parse_job(raw, base=path.parent)
    except JobError as exc:
        raise UsageError(f"{path}: {exc}") from exc


def load_inputs(job):
    """The intensity (and mask) of ``job``, checked against its shape and the support."""
    volumes = {}
    for key in ("data", "mask"):
        spec = getattr(job, key)
        try:
            volumes[key] = read_volume(spec, ndim=job.data_dim) if spec else None
        except InputFormatError as exc:
            raise UsageError(f"{key!r}: {exc}") from exc
    data, mask = volumes["data"], volumes["mask"]
    mask = mask != 0 if mask is not None else None
    if mask is not None and mask.shape != data.shape:
        raise UsageError(f"'mask' shape {mask.shape} differs from 'data' shape {data.shape}")
    check_intensity(data, mask, job.data)
    if job.support_size >= min(data.shape):
        raise UsageError(
            f"'support_size' ({job.support_size:g}) must be smaller than the data's side ({min(data.shape)} pixels)"
        )
    if not job.out_file.parent.is_dir():
        raise UsageError(f"'out_file': folder {str(job.out_file.parent)!r} does not exist")
    try:
        check_output_path(job.out_file)
    except InputFormatError as exc:
        raise UsageError(f"'out_file': {exc}") from None
    return data, mask


def check_intensity(data: np.ndarray, mask: np.ndarray | None, source) -> None:
    """Refuse an intensity phasing cannot use: NaN or infinite values, or nothing but zeros.

    Negative values mean "unknown" (Dragonfly's convention) and are allowed; a
    NaN is refused rather than guessed at, since it usually marks a broken merge.
    """
    bad = np.count_nonzero(~np.isfinite(data))
    if bad:
        raise UsageError(
            f"'data': {source}: {bad} value(s) are NaN or infinite; mark unknown "
            "pixels with a negative value or in 'mask'"
        )
    known = data >= 0 if mask is None else (data >= 0) & ~mask
    if not np.any(data[known] > 0):
        raise UsageError(f"'data': {source}: the intensity is zero at every known pixel; nothing to phase")


def main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    job = load_job(args.job)
    data, mask = load_inputs(job)
    check_memory(job, data.shape)
    if job.srand is None:
        job = dataclasses.replace(job, srand=secrets.randbits(32))
    if args.check:
        if not args.quiet:
            print(
                f"{args.job}: valid; data {data.shape}, "
                f"{sum(s.iterations for s in job.steps)} iterations x {job.n_starts} starts"
            )
        return 0

    try:
        backend.backend_name(args.backend)
    except backend.BackendError as exc:
        raise UsageError(str(exc)) from exc
    # The summary is for the log as much as for a terminal (a batch job's output is a file): only
    # the progress bar needs a terminal.  The seed is in it, so a run with a random one can be redone.
    show = not args.quiet and sys.stderr.isatty()
    if not args.quiet:
        print(run_line(job, data.shape, backend.backend_name(args.backend)), flush=True)
    t0 = time.perf_counter()
    result = phase(
        data,
        support=job.support_size,
        algorithms=job.steps,
        n_starts=job.n_starts,
        n_best=job.n_images,
        mask=mask,
        constraint=job.constraint,
        shrinkwrap=job.shrinkwrap,
        seed=job.srand,
        dtype=np.complex64 if job.precision == "single" else np.complex128,
        centered=job.centered,
        backend_name=args.backend,
        progress=show,
    )
    write_h5(
        job.out_file,
        result_datasets(result, job.constraint),
        {"job": json.dumps(job.to_json()), "backend": result.info["backend"], "beamhub_version": _version()},
    )
    if not args.quiet:
        print(summary(result, job, time.perf_counter() - t0), flush=True)
    return 0


def run_line(job, shape, backend_name: str) -> str:
    """One line saying what a run does: data, starts, iterations per step, seed and where it computes."""
    steps = ", ".join(f"{s.name} {s.iterations}" for s in job.steps)
    support = "shrinkwrap" if job.shrinkwrap else "static"
    return (
        f"phasing {job.data} {memory.shape_text(shape)}: {job.n_starts} start(s) x "
        f"{sum(s.iterations for s in job.steps)} iterations ({steps}), {support} support "
        f"{job.support_size:g} px, seed {job.srand}, on {backend_name}"
    )


def summary(result, job, seconds: float) -> str:
    """The lines printed when a run is written: the file, the time taken and the best Fourier errors."""
    best = ", ".join(f"{s:.4g}" for s in result.scores[: job.n_images])
    per_iteration = result.info.get("seconds_per_iteration")
    pace = f" ({per_iteration * 1e3:.3g} ms per iteration)" if per_iteration else ""
    return (
        f"wrote {job.out_file} in {seconds:.1f} s{pace}\n"
        f"  best Fourier error: {best}  (all {job.n_starts} starts in 'scores')"
    )


def memory_estimate(job, shape) -> dict[str, float]:
    """Bytes a phasing run of ``job`` on an intensity of ``shape`` needs, by cause.

    ``"images"``: the kept solutions and supports, held three times over while
    they are aligned and stacked; ``"scores"``: the per-start, per-iteration
    error table; ``"volume"``: the input, its amplitudes and one start's
    working set (iterate, spectrum, previous iterate, FFT temporaries).
    """
    voxels = float(np.prod(shape))
    complex_size = 8 if job.precision == "single" else 16
    keep = max(job.n_images, min(job.n_starts, PRTF_SOLUTIONS))
    iterations = sum(s.iterations for s in job.steps)
    return {
        "images": 3.0 * keep * (complex_size + 1) * voxels,
        "scores": 8.0 * job.n_starts * (iterations + 2),
        "volume": voxels * (8 + 1 + 8 + complex_size // 2 + 1 + 6 * complex_size),
    }


def check_memory(job, shape) -> None:
    """Refuse a job whose estimate exceeds the memory available, naming the key to lower."""
    parts = memory_estimate(job, shape)
    cause = max(parts, key=parts.get)
    if cause == "images" and job.n_images <= PRTF_SOLUTIONS:
        cause = "volume"  # the PRTF keeps this many anyway: fewer images would not help
    size = memory.shape_text(shape)
    what, advice = {
        "images": (f"number_of_outputs_images={job.n_images} at {size}", "lower it"),
        "scores": (
            f"number_of_outputs_scores={job.n_starts} with {sum(s.iterations for s in job.steps)} iterations",
            "lower it",
        ),
        "volume": (f"'data' of {size} ({job.precision} precision)", 'use a smaller volume or "precision": "single"'),
    }[cause]
    memory.require(sum(parts.values()), what, advice)


def result_datasets(result, constraint: str) -> dict[str, np.ndarray]:
    """The HDF5 datasets of a :class:`PhasingResult`; images are real unless ``constraint`` is none."""
    images, average = result.images, result.average
    if constraint != "none":
        images, average = images.real, average.real
    return {
        "images": images,
        "average": average,
        "scores": result.scores,
        "start_index": result.starts,
        "errors": result.errors,
        "supports": result.supports.astype(np.uint8),
        "prtf": result.prtf,
        "prtf_radius": result.prtf_radius,
    }


def _version() -> str:

    return __version__
