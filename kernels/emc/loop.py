"""The EMC loop around the iterations: Dragonfly's output files, the log, checkpoints, resume.

:func:`run` iterates an :class:`~beamhub.kernels.emc.iteration.EMC` and writes what a
Dragonfly user expects — ``output_NNN.h5`` every iteration and the ``EMC.log`` table —
plus a checkpoint after every iteration, from which ``resume=True`` continues.  Each
iteration's row also goes to the ``beamhub.kernels.emc`` logger, terminal or not; only
the progress line on stderr follows the terminal.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from beamhub.kernels.emc.iteration import EMC
from beamhub.kernels.io import dragonfly as dio
from beamhub.kernels.io.atomic import InputFormatError, atomic_output

__all__ = ["run", "load_checkpoint", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "emc_checkpoint.h5"
log = logging.getLogger("beamhub.kernels.emc")


def _backup_log(path: Path) -> None:
    """Keep an existing log as ``.NAME.bak`` (``.bak1``, ... if taken), as Dragonfly does."""
    if not path.exists():
        return
    n = 0
    while True:
        bak = path.with_name(f".{path.name}.bak{n if n else ''}")
        if not bak.exists():
            shutil.copy2(path, bak)
            return
        n += 1


def _append_text(path: Path, text: str) -> None:
    """Append by rewriting atomically (a killed run never leaves a torn log line)."""
    old = path.read_text() if path.exists() else ""
    with atomic_output(path) as tmp:
        tmp.write_text(old + text)


def load_checkpoint(folder: Path, fingerprint: dict) -> dict:
    """Read ``emc_checkpoint.h5`` and check it belongs to this problem."""
    path = folder / CHECKPOINT_NAME
    if not path.is_file():
        raise InputFormatError(f"{str(path)!r}: no checkpoint to resume from (run without --resume)")
    with h5py.File(path, "r") as f:
        stored = {k: int(f.attrs[k]) for k in fingerprint if k in f.attrs}
        wrong = {k: (stored.get(k), v) for k, v in fingerprint.items() if stored.get(k) != v}
        if wrong:
            detail = ", ".join(f"{k}: checkpoint {a}, now {b}" for k, (a, b) in wrong.items())
            raise InputFormatError(f"{str(path)!r} belongs to a different problem ({detail})")
        return {"intens": f["intens"][()], "scale": f["scale"][()], "iteration": int(f["iteration"][()])}


def run(
    emc: EMC,
    iterations: int,
    *,
    output_folder: str | os.PathLike | None = None,
    log_file: str | os.PathLike | None = None,
    resume: bool = False,
    callback: Callable | None = None,
    progress: bool | None = None,
    write_start: bool = True,
):
    """Iterate ``emc`` up to iteration number ``iterations``, writing Dragonfly's outputs.

    Parameters
    ----------
    emc : EMC
    iterations : int
        Last iteration number to reach (a resumed run continues from its checkpoint).
    output_folder : path, optional
        Where ``output_NNN.h5`` and ``emc_checkpoint.h5`` go (no files when None).
    log_file : path, optional
        EMC.log path (none when None).
    resume : bool
        Continue from ``output_folder/emc_checkpoint.h5``.
    callback : callable, optional
        ``callback(iteration, model, figures)`` after every iteration (rank 0 only), e.g. a
        notebook's live view; ``model`` is a (s, s, s) float64 numpy array.
    progress : bool, optional
        Show a progress line on stderr (default: when stderr is a terminal).  The
        per-iteration figures go to the ``beamhub.kernels.emc`` logger (INFO) either way.

    Returns
    -------
    list of IterationFigures
    """
    rank0 = emc.comm.rank == 0
    folder = Path(output_folder) if output_folder is not None else None
    log_path = Path(log_file) if log_file is not None else None
    if progress is None:
        progress = sys.stderr.isatty()
    if resume:
        if folder is None:
            raise InputFormatError("resume needs an output folder holding the checkpoint")
        state = emc.comm.bcast(load_checkpoint(folder, emc.fingerprint()) if rank0 else None)
        emc.model = np.asarray(state["intens"], dtype=np.float64)
        emc.scale = np.asarray(state["scale"], dtype=np.float64)
        emc.iteration = state["iteration"]
        emc.scale_given = emc.scale_given or emc.iteration > 0
    elif rank0:
        if folder is not None and write_start:
            dio.write_output(folder / "output_000.h5", {"intens": emc.model[None]})
        if log_path is not None:
            _backup_log(log_path)
            threads = emc.ops.threads
            with_log = dio.format_log_header(
                num_data=emc.num_data,
                mean_count=emc.mean_count,
                num_rot=emc.num_rot,
                rel_num_pix=emc.detector.rel_num_pix,
                num_pix=emc.detector.num_pix,
                size=emc.detector.size,
                num_threads=threads,
                num_proc=emc.comm.size,
                alpha=emc.settings.alpha,
                beta=float(emc.beta0[0]) if len(emc.beta0) else 0.0,
                need_scaling=emc.settings.need_scaling,
            )
            with atomic_output(log_path) as tmp:
                tmp.write_text(with_log)
    history = []
    if progress and rank0 and emc.iteration < iterations:
        _progress(emc.iteration, iterations)
    while emc.iteration < iterations:
        fig = emc.iterate()
        if rank0:
            t_write = time.perf_counter()
            if folder is not None:
                data = {
                    "intens": emc.model[None],
                    "inter_weight": emc.inter_weight[None],
                    "orientations": fig.per_frame["orientations"].astype(np.int32),
                    "mutual_info": fig.per_frame["mutual_info"],
                    "likelihood": fig.per_frame["likelihood"],
                }
                if "scale" in fig.per_frame:
                    data["scale"] = fig.per_frame["scale"]
                dio.write_output(folder / f"output_{fig.iteration:03d}.h5", data)
            fig.time += time.perf_counter() - t_write
            if log_path is not None:
                _append_text(
                    log_path,
                    dio.format_log_row(
                        fig.iteration, fig.time, fig.rms_change, fig.info_rate, fig.likelihood, fig.num_rot, fig.beta
                    ),
                )
            if folder is not None:  # last: a checkpoint implies the outputs above exist
                dio.write_output(folder / CHECKPOINT_NAME, emc.state(), attrs=emc.fingerprint())
            if progress:  # clear the progress line before the log row
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            log.info(
                "iter %4d  %7.2f s  rms %.4e  info %.4f  loglik %.6e  beta %.4f",
                fig.iteration,
                fig.time,
                fig.rms_change,
                fig.info_rate,
                fig.likelihood,
                fig.beta,
            )
            if progress and fig.iteration < iterations:
                _progress(fig.iteration, iterations)
            if callback is not None:
                callback(fig.iteration, emc.model, fig)
        history.append(fig)
    return history


def _progress(done: int, total: int, width: int = 30) -> None:
    """One overwritten stderr line: a bar of ``done`` of ``total`` iterations (terminals only)."""
    n = width * done // max(total, 1)
    print(f"\r[{'#' * n}{'.' * (width - n)}] iteration {done + 1}/{total} running", end="", file=sys.stderr, flush=True)
