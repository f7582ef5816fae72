"""The JSON phasing job (the format of the Kurchatov/EuXFEL pipeline), parsed and validated.

:func:`parse_job` is a pure function from the decoded JSON object to a
:class:`PhaseJob`; any unknown key or bad value raises :class:`JobError` whose
message names the key (``algo[1].beta_init``) and what is allowed.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from beamhub.kernels.phasing.retrieval import ALGORITHMS, Step
from beamhub.kernels.phasing.support import ShrinkWrap

__all__ = ["JOB_KEYS", "JobError", "PhaseJob", "parse_job"]


class JobError(ValueError):
    """A phasing job with an unknown key or a bad value; the message names the key."""


#: key -> (required, one-line description) — the documented schema (docs/phasing.md).
JOB_KEYS: dict[str, tuple[bool, str]] = {
    "data": (True, "input intensity: .bin (Dragonfly, float64, negative = unknown), .npy or FILE.h5:/DATASET"),
    "data_dim": (True, '"2d" or "3d"'),
    "support_size": (True, "diameter in pixels of the centred support (the initial one for shrinkwrap)"),
    "algo": (True, "list of {name: er|hio|raar, number_of_iterations, beta_init, beta_final}"),
    "out_file": (True, "HDF5 file written (atomically) with the results"),
    "srand": (False, "seed of the random starts (integer >= 0); default: fresh entropy, recorded in the output"),
    "number_of_outputs_images": (False, "best images written, <= number_of_outputs_scores (default 1)"),
    "number_of_outputs_scores": (False, "independent random starts, all scores written (default 1)"),
    "support_algo": (False, '"static" (default) or "shrinkwrap"'),
    "constraint": (False, '"positive" (default), "real" or "none" (complex object)'),
    "mask": (False, "volume of the data's shape, non-zero where the intensity is unknown"),
    "centered": (False, "true (default) when q = 0 is at the volume centre, false for FFT order"),
    "precision": (False, '"single" (default, complex64) or "double" (complex128)'),
    "shrinkwrap_threshold": (False, "shrinkwrap: fraction of the blurred maximum kept (default 0.2)"),
    "shrinkwrap_sigma": (False, "shrinkwrap: initial blur in pixels (default 3.0)"),
    "shrinkwrap_sigma_final": (False, "shrinkwrap: final blur in pixels (default 1.0)"),
    "shrinkwrap_every": (False, "shrinkwrap: iterations between support updates (default 20)"),
}

ALGO_KEYS = ("name", "number_of_iterations", "beta_init", "beta_final")


@dataclass(frozen=True)
class PhaseJob:
    """A validated phasing job; paths are absolute."""

    data: Path
    data_dim: int
    support_size: float
    steps: tuple[Step, ...]
    out_file: Path
    srand: int | None = None
    n_images: int = 1
    n_starts: int = 1
    shrinkwrap: ShrinkWrap | None = None
    constraint: str = "positive"
    mask: Path | None = None
    centered: bool = True
    precision: str = "single"

    def to_json(self) -> dict[str, Any]:
        """The job in its JSON spelling, with every default filled in."""
        out = {
            "srand": self.srand,
            "data": str(self.data),
            "data_dim": f"{self.data_dim}d",
            "number_of_outputs_images": self.n_images,
            "number_of_outputs_scores": self.n_starts,
            "support_algo": "shrinkwrap" if self.shrinkwrap else "static",
            "support_size": self.support_size,
            "algo": [
                {
                    "name": s.name,
                    "number_of_iterations": s.iterations,
                    "beta_init": s.beta_init,
                    "beta_final": s.beta_init if s.beta_final is None else s.beta_final,
                }
                for s in self.steps
            ],
            "out_file": str(self.out_file),
            "constraint": self.constraint,
            "centered": self.centered,
            "precision": self.precision,
        }
        if self.mask is not None:
            out["mask"] = str(self.mask)
        if self.shrinkwrap:
            sw = asdict(self.shrinkwrap)
            out.update({f"shrinkwrap_{k}": v for k, v in sw.items()})
        return out


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(job: dict, key: str, default, minimum: int) -> int:
    value = job.get(key, default)
    if not _is_int(value) or value < minimum:
        raise JobError(f"{key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(job: dict, key: str, default, low: float, high: float | None = None, label: str | None = None) -> float:
    value = job.get(key, default)
    label = label or repr(key)
    if not _is_number(value) or value <= low or (high is not None and value > high):
        bound = f"in ({low}, {high}]" if high is not None else f"> {low}"
        raise JobError(f"{label} must be a number {bound}, got {value!r}")
    return float(value)


def _choice(job: dict, key: str, default, choices: tuple[str, ...]) -> str:
    value = job.get(key, default)
    if value not in choices:
        raise JobError(f"{key!r} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _path(job: dict, key: str, base: Path) -> Path:
    value = job[key]
    if not isinstance(value, str) or not value.strip():
        raise JobError(f"{key!r} must be a non-empty path string, got {value!r}")
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def _steps(value) -> tuple[Step, ...]:
    if not isinstance(value, list) or not value:
        raise JobError(f"'algo' must be a non-empty list of steps, got {value!r}")
    steps = []
    for i, entry in enumerate(value):
        where = f"algo[{i}]"
        if not isinstance(entry, dict):
            raise JobError(
                f'{where} must be an object like {{"name": "hio", "number_of_iterations": 100}}, got {entry!r}'
            )
        unknown = sorted(set(entry) - set(ALGO_KEYS))
        if unknown:
            raise JobError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(ALGO_KEYS)}")
        name = entry.get("name")
        if name not in ALGORITHMS:
            raise JobError(f"{where}.name must be one of {', '.join(map(repr, ALGORITHMS))}, got {name!r}")
        if "number_of_iterations" not in entry:
            raise JobError(f"{where}.number_of_iterations is required")
        iterations = entry["number_of_iterations"]
        if not _is_int(iterations) or iterations < 1:
            raise JobError(f"{where}.number_of_iterations must be an integer >= 1, got {iterations!r}")
        beta_init = _number(entry, "beta_init", 0.9, 0.0, 1.0, f"{where}.beta_init")
        beta_final = _number(entry, "beta_final", beta_init, 0.0, 1.0, f"{where}.beta_final")
        steps.append(Step(name, iterations, beta_init, beta_final))
    return tuple(steps)


def parse_job(job: Any, base: str | os.PathLike = ".") -> PhaseJob:
    """Validate a decoded JSON job and return it as a :class:`PhaseJob`.

    Parameters
    ----------
    job : object
        The decoded JSON (must be an object).
    base : path-like
        Folder that relative paths in ``data``, ``mask`` and ``out_file`` are
        resolved against (the job file's folder).

    Raises
    ------
    JobError
        For the first unknown key, missing required key or bad value, naming it.
    """
    if not isinstance(job, dict):
        raise JobError(f"the job must be a JSON object, got {type(job).__name__}")
    unknown = sorted(set(job) - set(JOB_KEYS))
    if unknown:
        raise JobError(f"unknown key {unknown[0]!r}; allowed keys: {', '.join(JOB_KEYS)}")
    for key, (required, _) in JOB_KEYS.items():
        if required and key not in job:
            raise JobError(f"missing required key {key!r}")
    base = Path(base).resolve()

    data_dim = _choice(job, "data_dim", None, ("2d", "3d"))
    srand = job.get("srand")
    if srand is not None and (not _is_int(srand) or srand < 0):
        raise JobError(f"'srand' must be an integer >= 0, got {srand!r}")
    n_starts = _int(job, "number_of_outputs_scores", 1, 1)
    n_images = _int(job, "number_of_outputs_images", 1, 1)
    if n_images > n_starts:
        raise JobError(
            f"'number_of_outputs_images' ({n_images}) must not exceed "
            f"'number_of_outputs_scores' ({n_starts}), the number of starts"
        )
    support_algo = _choice(job, "support_algo", "static", ("static", "shrinkwrap"))
    support_size = _number(job, "support_size", None, 0.0)
    sw_keys = [k for k in job if k.startswith("shrinkwrap_")]
    if support_algo == "static" and sw_keys:
        raise JobError(f'{sw_keys[0]!r} applies only with "support_algo": "shrinkwrap"')
    shrinkwrap = None
    if support_algo == "shrinkwrap":
        threshold = _number(job, "shrinkwrap_threshold", 0.2, 0.0, 1.0)
        if threshold >= 1.0:
            raise JobError(f"'shrinkwrap_threshold' must be below 1, got {threshold!r}")
        shrinkwrap = ShrinkWrap(
            threshold=threshold,
            sigma=_number(job, "shrinkwrap_sigma", 3.0, 0.0),
            sigma_final=_number(job, "shrinkwrap_sigma_final", 1.0, 0.0),
            every=_int(job, "shrinkwrap_every", 20, 1),
        )
    centered = job.get("centered", True)
    if not isinstance(centered, bool):
        raise JobError(f"'centered' must be true or false, got {centered!r}")
    return PhaseJob(
        data=_path(job, "data", base),
        data_dim=int(data_dim[0]),
        support_size=support_size,
        steps=_steps(job["algo"]),
        out_file=_path(job, "out_file", base),
        srand=srand,
        n_images=n_images,
        n_starts=n_starts,
        shrinkwrap=shrinkwrap,
        constraint=_choice(job, "constraint", "positive", ("positive", "real", "none")),
        mask=_path(job, "mask", base) if "mask" in job else None,
        centered=centered,
        precision=_choice(job, "precision", "single", ("single", "double")),
    )
