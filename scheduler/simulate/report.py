"""Figures of merit of a simulated day, as a table and as PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from beamhub.atomic import atomic_output
from beamhub.scheduler.simulate.engine import PolicyRun
from beamhub.scheduler.simulate.workload import Trace

__all__ = ["COLUMNS", "summarise", "markdown_table", "write_outputs"]

#: (key, header) of the table, in order.
COLUMNS = (
    ("policy", "policy"),
    ("cpu_p95", "node CPU p95 %"),
    ("cpu_p99", "node CPU p99 %"),
    ("hot_node_minutes", "hot-spot node-min (>90%)"),
    ("session_hot_minutes", "session-min on hot nodes"),
    ("stranded_1_pct", "free GPUs unusable 1-GPU %"),
    ("stranded_4_pct", "free GPUs unusable 4-GPU %"),
    ("blocked_4_minutes", "min 4-GPU blocked"),
    ("rejected_sessions", "rejected spawns"),
    ("pending_batch_end", "batch pending at end"),
    ("start_p50_min", "start p50 min"),
    ("start_p95_min", "start p95 min"),
    ("gpu_start_p95_min", "GPU start p95 min"),
)


def _pct(values: np.ndarray, q: float) -> float:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if values.size else float("nan")


def summarise(run: PolicyRun, trace: Trace) -> dict:
    """The figures of one run (see :data:`COLUMNS`); times in minutes, utilisation in %."""
    sessions = trace.is_session
    gpu_sessions = sessions & np.array([k.gpus > 0 for k in trace.kinds])[trace.kind]
    has_free = run.free_gpus > 0

    def frac(s):
        return float(100 * s[has_free].sum() / run.free_gpus[has_free].sum()) if has_free.any() else 0.0

    return {
        "policy": run.policy,
        "cpu_p95": round(100 * float(np.percentile(run.util, 95)), 1),
        "cpu_p99": round(100 * float(np.percentile(run.util, 99)), 1),
        "hot_node_minutes": int(np.sum(run.util > 0.9)),
        "session_hot_minutes": int(run.session_hot),
        "stranded_1_pct": round(frac(run.stranded_1), 1),
        "stranded_4_pct": round(frac(run.stranded_4), 1),
        "blocked_4_minutes": int(run.blocked_4.sum()),
        "rejected_sessions": int(run.rejected.sum()),
        "pending_batch_end": int(run.extra.get("pending_at_end", 0)),
        "start_p50_min": round(_pct(run.wait[sessions], 50), 2),
        "start_p95_min": round(_pct(run.wait[sessions], 95), 2),
        "gpu_start_p95_min": round(_pct(run.wait[gpu_sessions], 95), 2),
    }


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    head = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    rule = "|" + "|".join("---" if k == "policy" else "---:" for k, _ in COLUMNS) + "|"
    body = ["| " + " | ".join(str(r[k]) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def write_outputs(out: Path, runs: list[PolicyRun], rows: list[dict], meta: dict) -> list[Path]:
    """Write ``results.json``, ``results.md`` and PNG plots into ``out``; returns the paths.

    Every file goes through :func:`beamhub.atomic.atomic_output` (temporary name, then
    rename), so a crash never leaves a half-written result.
    """
    # Agg is chosen here, when a report is drawn, not for every program that imports the simulator
    import matplotlib  # noqa: PLC0415  backend chosen at use

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  after the backend is chosen

    out.mkdir(parents=True, exist_ok=True)
    written = []
    written.append(
        _atomic(
            out / "results.json", lambda p: p.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
        )
    )
    written.append(_atomic(out / "results.md", lambda p: p.write_text(markdown_table(rows) + "\n")))

    hours = np.arange(runs[0].util.shape[0]) / 60.0
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.2 * len(runs) + 0.6), sharex=True, sharey=True)
    for ax, run in zip(np.atleast_1d(axes), runs):
        ax.fill_between(
            hours,
            np.percentile(run.util, 5, axis=1) * 100,
            np.percentile(run.util, 95, axis=1) * 100,
            alpha=0.3,
            label="nodes p5-p95",
        )
        ax.plot(hours, run.util.max(axis=1) * 100, lw=0.8, label="hottest node")
        ax.plot(hours, np.median(run.util, axis=1) * 100, lw=1.0, label="median node")
        ax.axhline(90, color="red", lw=0.6, ls="--")
        ax.set_title(run.policy, fontsize=9)
        ax.set_ylabel("CPU %")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    np.atleast_1d(axes)[-1].set_xlabel("hour of day")
    fig.tight_layout()
    written.append(_atomic(out / "node_cpu_over_time.png", lambda p: fig.savefig(p, dpi=110, format="png")))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        samples = np.sort(run.util.ravel()) * 100
        ax.plot(samples, np.linspace(0, 1, samples.size), label=run.policy)
    ax.axvline(90, color="red", lw=0.6, ls="--")
    ax.set_xlabel("node CPU utilisation %")
    ax.set_ylabel("fraction of node-minutes")
    ax.set_title("CDF of node CPU utilisation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_atomic(out / "node_cpu_cdf.png", lambda p: fig.savefig(p, dpi=110, format="png")))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3.5))
    for run in runs:
        ax.plot(hours, run.stranded_4, lw=1.0, label=f"{run.policy}: unusable for 4-GPU")
    ax.plot(hours, runs[0].free_gpus, lw=0.6, color="grey", label=f"{runs[0].policy}: free GPUs")
    ax.set_xlabel("hour of day")
    ax.set_ylabel("GPUs")
    ax.set_title("GPU fragmentation")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(_atomic(out / "gpu_fragmentation.png", lambda p: fig.savefig(p, dpi=110, format="png")))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        waits = np.sort(run.wait[~np.isnan(run.wait)])
        ax.plot(waits, np.linspace(0, 1, waits.size), label=run.policy)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("minutes from arrival to start (all pods)")
    ax.set_ylabel("fraction of started pods")
    ax.set_title("Time to start")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_atomic(out / "time_to_start.png", lambda p: fig.savefig(p, dpi=110, format="png")))
    plt.close(fig)
    return written


def _atomic(path: Path, write) -> Path:
    """Call ``write(temporary_path)`` and put the result at ``path`` (:func:`beamhub.atomic.atomic_output`)."""
    with atomic_output(path) as tmp:
        write(tmp)
    return path
