"""Cluster simulator: replay a day of user sessions and batch load under several placement policies.

:func:`run_simulation` is the whole simulation; ``beamhub simulate cluster`` (its options and
output, :mod:`beamhub.scheduler.commands.simulate`) calls it.  The same seed gives the same
trace and the same results; each policy replays the identical trace.
"""

from __future__ import annotations

from beamhub.scheduler.simulate.engine import POLICIES, ClusterSpec, PolicyRun, simulate_policy
from beamhub.scheduler.simulate.report import summarise
from beamhub.scheduler.simulate.workload import DEFAULT_ENVIRONMENTS, make_trace

__all__ = ["POLICIES", "ClusterSpec", "PolicyRun", "run_simulation"]


def run_simulation(
    *,
    seed: int = 0,
    hours: float = 24.0,
    sessions: int = 600,
    batch_jobs: int = 400,
    cluster: ClusterSpec | None = None,
    policies=POLICIES,
    environments=DEFAULT_ENVIRONMENTS,
    extender_weight: float = 5.0,
    metrics_lag: int = 2,
    spawn_timeout: float = 5.0,
    progress=None,
) -> tuple[list[PolicyRun], list[dict], dict]:
    """Simulate every policy on one trace.

    Parameters
    ----------
    seed : int
        Seeds the trace and the tie-breaking; the results are a function of it.
    hours : float
        Simulated time (the trace's arrivals follow a daily profile).
    sessions, batch_jobs : int
        Expected user sessions and batch jobs over ``hours``.
    cluster : ClusterSpec, optional
    policies : sequence of str
        Names from :data:`POLICIES`.
    environments : tuple of Environment
        Session menu.
    extender_weight, metrics_lag, spawn_timeout :
        See :func:`beamhub.scheduler.simulate.engine.simulate_policy`.
    progress : callable, optional
        Called with minutes simulated.

    Returns
    -------
    runs : list of PolicyRun
    rows : list of dict
        One summary row per policy (keys in :data:`beamhub.scheduler.simulate.report.COLUMNS`).
    meta : dict
        The inputs, for the record.
    """
    cluster = cluster or ClusterSpec()
    trace = make_trace(seed, sessions=sessions, batch_jobs=batch_jobs, hours=hours, environments=environments)
    runs = [
        simulate_policy(
            trace,
            cluster,
            p,
            seed=seed,
            hours=hours,
            extender_weight=extender_weight,
            metrics_lag=metrics_lag,
            spawn_timeout=spawn_timeout,
            progress=progress,
        )
        for p in policies
    ]
    rows = [summarise(run, trace) for run in runs]
    meta = {
        "seed": seed,
        "hours": hours,
        "sessions": int(trace.is_session.sum()),
        "batch_jobs": int((~trace.is_session).sum()),
        "cluster": cluster.__dict__ | {},
        "environments": [e.slug for e in environments],
        "extender_weight": extender_weight,
        "metrics_lag_min": metrics_lag,
        "spawn_timeout_min": spawn_timeout,
    }
    return runs, rows, meta
