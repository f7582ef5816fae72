"""The workload the simulator replays: environments, user sessions and background batch jobs.

A trace is fixed by its seed: every policy replays the same arrivals, lengths and usage.
Usage is a deterministic function of a pod's own parameters and the time, never of where
it runs, so the policies are compared on exactly the same demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from beamhub.errors import UsageError
from beamhub.qos import BEST_EFFORT, BURSTABLE, GUARANTEED, QOS_CLASSES, from_catalog
from beamhub.scheduler.models import PodDemand

__all__ = [
    "DEFAULT_ENVIRONMENTS",
    "BATCH_KINDS",
    "Environment",
    "Trace",
    "catalog_environments",
    "load_environments",
    "make_trace",
]

GIB = 2.0**30


@dataclass(frozen=True)
class Environment:
    """One kind of pod: a menu entry of the catalog or a background batch job.

    Attributes
    ----------
    slug : str
    cpu : float
        CPU request, cores (0 for BestEffort).
    cpu_limit : float
        CPU limit, cores: the most the pod ever uses.
    memory : float
        Memory request, bytes.
    gpus : int
        GPUs requested.
    qos : str
        QoS class of the pod.
    share : float
        Relative frequency among sessions (or among batch jobs).
    usage : tuple of float
        (low, high) bounds of the pod's mean CPU use as a fraction of ``cpu_limit``.
    """

    slug: str
    cpu: float
    cpu_limit: float
    memory: float
    gpus: int
    qos: str
    share: float
    usage: tuple[float, float]

    def demand(self) -> PodDemand:
        """The pod as the scheduling policies see it."""
        limit = self.cpu_limit if self.qos != BEST_EFFORT else None
        return PodDemand(
            name=self.slug, cpu=self.cpu, memory=self.memory, gpus=float(self.gpus), cpu_limit=limit, qos_class=self.qos
        )


#: A site-scale menu (CPU, tomography, 1-GPU and 4-GPU sessions, larger than the shipped catalog's):
#: what :func:`make_trace` and :func:`~beamhub.scheduler.simulate.run_simulation` replay when given
#: no menu, as the tests and ``benchmarks/scheduler.py`` (whose figures RESULTS.md records) do.
#: ``beamhub simulate cluster`` replays the real catalog instead (:func:`catalog_environments`).
DEFAULT_ENVIRONMENTS = (
    Environment("base", 2, 4, 8 * GIB, 0, BURSTABLE, 0.45, (0.05, 0.45)),
    Environment("tomo", 8, 8, 32 * GIB, 0, GUARANTEED, 0.20, (0.30, 0.85)),
    Environment("gpu", 8, 8, 48 * GIB, 1, GUARANTEED, 0.25, (0.20, 0.60)),
    Environment("spi", 16, 16, 128 * GIB, 4, GUARANTEED, 0.10, (0.30, 0.80)),
)
#: Background batch load: requests far below real use, which is what request-based scoring misses.
BATCH_KINDS = (
    Environment("batch-burstable", 2, 8, 8 * GIB, 0, BURSTABLE, 0.7, (0.75, 1.0)),
    Environment("batch-besteffort", 0, 4, 0, 0, BEST_EFFORT, 0.3, (0.75, 1.0)),
)

#: (low, high) mean CPU use of a catalog session, as a fraction of its limit, by what it is: GPU
#: sessions wait on their GPU, Guaranteed ones were sized for heavy work, the others mostly idle.
_CATALOG_USAGE = {"gpu": (0.20, 0.60), GUARANTEED: (0.30, 0.85), BURSTABLE: (0.05, 0.45), BEST_EFFORT: (0.05, 0.45)}


def catalog_environments(entries) -> tuple[Environment, ...]:
    """The session menu of a hub catalog, as the simulator models it.

    Parameters
    ----------
    entries : iterable
        The catalog's environments (a :class:`beamhub.hub.catalog.Catalog`, already validated):
        each with ``slug``, ``cpu`` and ``memory`` (``guarantee``/``limit`` in cores and bytes),
        ``gpus`` and ``qos`` (the catalog's spelling, e.g. ``"burstable"``).

    Returns
    -------
    tuple of Environment
        One per entry, in order: request = the guarantee, limit = the limit, equal shares, and a
        usage range by kind (:data:`_CATALOG_USAGE`).
    """
    menu = []
    for entry in entries:
        qos = from_catalog(entry.qos)
        usage = _CATALOG_USAGE["gpu" if entry.gpus else qos]
        menu.append(
            Environment(
                slug=entry.slug,
                cpu=float(entry.cpu.guarantee),
                cpu_limit=float(entry.cpu.limit),
                memory=float(entry.memory.guarantee),
                gpus=int(entry.gpus),
                qos=qos,
                share=1.0,
                usage=usage,
            )
        )
    return tuple(menu)


_KEYS = {"slug", "cpu", "cpu_limit", "memory_gib", "gpus", "qos", "share", "usage"}


def load_environments(path: str | Path) -> tuple[Environment, ...]:
    """Session environments from a YAML list (keys: slug, cpu, cpu_limit, memory_gib, gpus, qos, share, usage).

    Raises
    ------
    UsageError
        Naming the entry and field that is wrong.
    """
    try:
        entries = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read environments file {path}: {exc}") from None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"environments file {path}: expected a non-empty YAML list of environments")
    found = []
    for i, entry in enumerate(entries):
        where = f"environments file {path}, entry {i}"
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: expected a mapping")
        unknown = set(entry) - _KEYS
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
        try:
            usage = tuple(float(u) for u in entry.get("usage", (0.1, 0.6)))
            env = Environment(
                slug=str(entry["slug"]),
                cpu=float(entry["cpu"]),
                cpu_limit=float(entry.get("cpu_limit", entry["cpu"])),
                memory=float(entry.get("memory_gib", 4)) * GIB,
                gpus=int(entry.get("gpus", 0)),
                qos=str(entry.get("qos", BURSTABLE)),
                share=float(entry.get("share", 1.0)),
                usage=usage,
            )  # type: ignore[arg-type]
        except KeyError as exc:
            raise UsageError(f"{where}: missing key {exc}") from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{where}: {exc}") from None
        if env.qos not in QOS_CLASSES:
            raise UsageError(f"{where}: qos must be one of {', '.join(QOS_CLASSES)}")
        if len(env.usage) != 2 or not 0 <= env.usage[0] <= env.usage[1] <= 1:
            raise UsageError(f"{where}: usage must be [low, high] with 0 <= low <= high <= 1")
        if env.cpu < 0 or env.cpu_limit < env.cpu or env.gpus < 0 or env.share <= 0:
            raise UsageError(f"{where}: need 0 <= cpu <= cpu_limit, gpus >= 0, share > 0")
        found.append(env)
    return tuple(found)


@dataclass
class Trace:
    """Every pod of one simulated day, as arrays of shape ``(n_pods,)``.

    Attributes
    ----------
    kinds : tuple of Environment
        Sessions' environments followed by batch kinds; ``kind`` indexes it.
    kind : int array
    is_session : bool array
    arrival : float array
        Minutes since the start of the day.
    duration : float array
        Minutes the pod runs once started.
    mean, amplitude, period, phase : float array
        CPU use = ``cpu_limit * clip(mean + amplitude * sin(2 pi t / period + phase), 0.02, 1)``.
    """

    kinds: tuple[Environment, ...]
    kind: np.ndarray
    is_session: np.ndarray
    arrival: np.ndarray
    duration: np.ndarray
    mean: np.ndarray
    amplitude: np.ndarray
    period: np.ndarray
    phase: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    def usage(self, index: np.ndarray, minute: float) -> np.ndarray:
        """CPU use in cores of pods ``index`` at ``minute``; shape ``index.shape``."""
        limit = np.array([k.cpu_limit for k in self.kinds])[self.kind[index]]
        angle = 2 * np.pi * minute / self.period[index] + self.phase[index]
        wave = self.mean[index] + self.amplitude[index] * np.sin(angle)
        return limit * np.clip(wave, 0.02, 1.0)


def _diurnal(minutes: np.ndarray) -> np.ndarray:
    """Session arrival intensity over a day: a morning and an afternoon peak, quiet nights."""
    h = minutes / 60.0 % 24
    return 0.08 + np.exp(-((h - 10.5) ** 2) / (2 * 1.8**2)) + 0.9 * np.exp(-((h - 15.0) ** 2) / (2 * 2.2**2))


def make_trace(
    seed: int,
    *,
    sessions: int,
    batch_jobs: int,
    hours: float = 24.0,
    environments: tuple[Environment, ...] = DEFAULT_ENVIRONMENTS,
    session_median_min: float = 75.0,
    batch_mean_min: float = 60.0,
) -> Trace:
    """Draw a day of sessions and batch jobs.

    Parameters
    ----------
    seed : int
        Everything below is a function of it.
    sessions, batch_jobs : int
        Expected numbers of user sessions and batch jobs in ``hours``.
    hours : float
        Length of the trace.
    environments : tuple of Environment
        The session menu (``share`` weights the choice).
    session_median_min : float
        Median session length, minutes (log-normal, sigma 0.8, at most 12 h).
    batch_mean_min : float
        Mean batch-job length, minutes (exponential, at least 5).

    Returns
    -------
    Trace
    """
    rng = np.random.default_rng(seed)
    minutes = np.arange(int(hours * 60))
    weights = _diurnal(minutes)
    n_sessions = rng.poisson(sessions)
    n_batch = rng.poisson(batch_jobs)
    s_arrival = rng.choice(minutes, size=n_sessions, p=weights / weights.sum()) + rng.random(n_sessions)
    # Batch load is flat with a night-time bump (reprocessing runs overnight).
    b_weights = 1.0 + 0.6 * (np.abs((minutes / 60.0 % 24) - 12) > 8)
    b_arrival = rng.choice(minutes, size=n_batch, p=b_weights / b_weights.sum()) + rng.random(n_batch)

    shares = np.array([e.share for e in environments])
    s_kind = rng.choice(len(environments), size=n_sessions, p=shares / shares.sum())
    b_shares = np.array([b.share for b in BATCH_KINDS])
    b_kind = len(environments) + rng.choice(len(BATCH_KINDS), size=n_batch, p=b_shares / b_shares.sum())
    s_duration = np.minimum(rng.lognormal(np.log(session_median_min), 0.8, n_sessions), 720.0)
    b_duration = np.maximum(rng.exponential(batch_mean_min, n_batch), 5.0)

    kinds = tuple(environments) + BATCH_KINDS
    kind = np.concatenate([s_kind, b_kind]).astype(np.int64)
    n = len(kind)
    low = np.array([k.usage[0] for k in kinds])[kind]
    high = np.array([k.usage[1] for k in kinds])[kind]
    order = np.argsort(np.concatenate([s_arrival, b_arrival]), kind="stable")
    fields = dict(
        kind=kind,
        is_session=np.concatenate([np.ones(n_sessions, bool), np.zeros(n_batch, bool)]),
        arrival=np.concatenate([s_arrival, b_arrival]),
        duration=np.concatenate([s_duration, b_duration]),
        mean=low + (high - low) * rng.random(n),
        amplitude=0.25 * rng.random(n),
        period=rng.uniform(15.0, 120.0, n),
        phase=rng.uniform(0.0, 2 * np.pi, n),
    )
    return Trace(kinds=kinds, **{k: v[order] for k, v in fields.items()})
