"""Scoring strategies, picked by name.

Every strategy is a pure function ``(pod, view, params) -> scores`` returning a float array
of shape ``(n,)`` in ``[0, 10]`` (``MAX_EXTENDER_PRIORITY``), ``nan`` where it has nothing to
go on; the caller turns ``nan`` into the neutral score 5.

``load-aware`` (ours, the default)
    Weighted headroom after placing the pod, on measured load::

        predicted_cpu = max(cpu_util, cpu_requested / cpu_alloc) + pod_cpu / cpu_alloc
        t_cpu  = clip(1 - predicted_cpu, 0, 1)
        t_mem  = clip((min(mem_available, mem_alloc - mem_requested) - pod_memory) / mem_total, 0, 1)
        t_io   = 1 - clip(iowait / iowait_ceiling, 0, 1)
        t_net  = 1 - clip(net_bytes / net_capacity, 0, 1)
        headroom = sum(w_q[t] * t) / sum(w_q[t])       over the measured t of cpu, mem, io, net
        t_gpu  = GPU pod:  0.6 * pod_gpus / free_gpus + 0.4 * (1 - gpu_util)   (best fit: fewer GPUs stranded)
                 CPU pod:  1 on a node without GPUs, gpu_node_cpu_share on a GPU node (keep them for GPU work)
        g      = gpu_fit_weight (GPU pod)  or  w_q[gpu] / sum(w_q) (CPU pod)
        score  = 10 * ((1 - g) * headroom + g * t_gpu)
        score *= hot_penalty   when predicted_cpu > hot_threshold

    with weights ``w_q`` chosen by the pod's QoS class (:data:`QOS_WEIGHTS`): a Guaranteed
    pod (an interactive session holding what it asked for) weighs I/O wait and network load
    more, a BestEffort pod (batch) weighs raw CPU headroom and keeping GPU nodes free more.
    A node with none of cpu, mem, io, net measured scores ``nan`` (neutral).

``target-load-packing``
    Trimaran's TargetLoadPacking on measured CPU: predicted utilisation
    ``U = (cpu_util * cpu_alloc + pod_estimate) / cpu_alloc`` (pod estimate = CPU limit, else
    1.5 x request, else 1 core); with target ``T``: ``U <= T`` -> ``(1 - T) * U / T + T``,
    ``T < U <= 1`` -> ``T * (1 - U) / (1 - T)``, ``U > 1`` -> 0; times 10.

``least-allocated``
    kube-scheduler's default scoring on requests: NodeResourcesFit LeastAllocated plus
    NodeResourcesBalancedAllocation over CPU and memory, averaged and scaled to 0..10.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from beamhub.qos import BEST_EFFORT, BURSTABLE, GUARANTEED
from beamhub.scheduler.models import MAX_EXTENDER_PRIORITY, PodDemand
from beamhub.scheduler.policy.view import NodeView

__all__ = ["QOS_WEIGHTS", "STRATEGIES", "ScoreParams", "get_strategy", "score_nodes"]

#: Weights of the load-aware terms (cpu, mem, io, net, gpu) by QoS class.
QOS_WEIGHTS: dict[str, tuple[float, float, float, float, float]] = {
    GUARANTEED: (0.30, 0.20, 0.15, 0.15, 0.20),
    BURSTABLE: (0.35, 0.20, 0.10, 0.10, 0.25),
    BEST_EFFORT: (0.40, 0.15, 0.05, 0.05, 0.35),
}


@dataclass(frozen=True)
class ScoreParams:
    """Tunables of the strategies (all fractions are 0..1).

    Attributes
    ----------
    hot_threshold : float
        Predicted CPU utilisation above which a node is a hot spot (load-aware).
    hot_penalty : float
        Factor applied to a hot spot's score (load-aware).
    iowait_ceiling : float
        I/O-wait fraction that scores zero (load-aware).
    net_capacity : float
        Bytes per second that count as a saturated network (load-aware).
    gpu_node_cpu_share : float
        The GPU term a CPU-only pod gets on a GPU node (load-aware).
    gpu_fit_weight : float
        Share of a GPU pod's score given to the GPU term (load-aware).
    besteffort_cpu : float
        Cores assumed for a pod that requests none (load-aware).
    target : float
        TargetLoadPacking's target utilisation.
    qos_weights : dict
        Overrides :data:`QOS_WEIGHTS`.
    """

    hot_threshold: float = 0.9
    hot_penalty: float = 0.25
    iowait_ceiling: float = 0.25
    net_capacity: float = 1.25e9
    gpu_node_cpu_share: float = 0.2
    gpu_fit_weight: float = 0.6
    besteffort_cpu: float = 0.1
    target: float = 0.4
    qos_weights: dict = field(default_factory=lambda: dict(QOS_WEIGHTS))


Strategy = Callable[[PodDemand, NodeView, ScoreParams], np.ndarray]


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(a, dtype=np.float64) / b
    return np.where(np.asarray(b) > 0, out, np.nan)


def load_aware(pod: PodDemand, view: NodeView, params: ScoreParams) -> np.ndarray:
    """Our QoS-weighted headroom score (formula in the module docstring)."""
    pod_cpu = pod.cpu if pod.cpu > 0 else params.besteffort_cpu
    committed = np.fmax(view.cpu_util, _safe_div(view.cpu_requested, view.cpu_alloc))
    predicted = committed + _safe_div(np.full(len(view), pod_cpu), view.cpu_alloc)
    t_cpu = np.clip(1.0 - predicted, 0.0, 1.0)

    mem_free = np.fmin(view.mem_available, view.mem_alloc - view.mem_requested)
    mem_total = np.where(np.isnan(view.mem_total), view.mem_alloc, view.mem_total)
    t_mem = np.clip(_safe_div(mem_free - pod.memory, mem_total), 0.0, 1.0)
    t_io = 1.0 - np.clip(view.iowait / params.iowait_ceiling, 0.0, 1.0)
    t_net = 1.0 - np.clip(view.net_bytes / params.net_capacity, 0.0, 1.0)

    gpu_nodes = view.gpu_alloc > 0
    if pod.gpus > 0:
        free_gpus = view.gpu_alloc - view.gpus_requested
        free_gpus = np.where(np.isnan(free_gpus), view.gpus_idle, free_gpus)
        fit = np.where(free_gpus >= pod.gpus, _safe_div(np.full(len(view), pod.gpus), free_gpus), 0.0)
        fit = np.where(np.isnan(free_gpus), np.nan, fit)
        idle = 1.0 - np.clip(view.gpu_util, 0.0, 1.0)
        t_gpu = np.where(np.isnan(idle), fit, 0.6 * fit + 0.4 * idle)
    else:
        t_gpu = np.where(np.isnan(view.gpu_alloc), np.nan, np.where(gpu_nodes, params.gpu_node_cpu_share, 1.0))

    weights = np.asarray(params.qos_weights.get(pod.qos_class, params.qos_weights[BURSTABLE]), dtype=np.float64)
    # Capacity-only terms (the GPU term) do not make a node "measured": with no load figure
    # at all the node scores neutral, so Prometheus being down never biases placement.
    measured = np.stack([t_cpu, t_mem, t_io, t_net])
    w = weights[:4, None] * ~np.isnan(measured)
    total_w = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        headroom = np.where(total_w > 0, np.nansum(measured * w, axis=0) / total_w, np.nan)
    # GPU pods: GPU fit carries gpu_fit_weight; CPU pods: keeping off GPU nodes carries w_q[gpu].
    g = params.gpu_fit_weight if pod.gpus > 0 else weights[4] / weights.sum()
    score = np.where(np.isnan(t_gpu), headroom, (1.0 - g) * headroom + g * t_gpu)
    score = np.where(predicted > params.hot_threshold, score * params.hot_penalty, score)
    return score * MAX_EXTENDER_PRIORITY


def target_load_packing(pod: PodDemand, view: NodeView, params: ScoreParams) -> np.ndarray:
    """Trimaran's TargetLoadPacking on measured CPU utilisation (0..10, ``nan`` unmeasured)."""
    if pod.cpu_limit is not None and pod.cpu_limit > 0:
        estimate = pod.cpu_limit
    elif pod.cpu > 0:
        estimate = 1.5 * pod.cpu
    else:
        estimate = 1.0
    used = view.cpu_util * view.cpu_alloc + estimate
    u = _safe_div(used, view.cpu_alloc)
    t = params.target
    score = np.where(u <= t, (1.0 - t) * u / t + t, np.where(u <= 1.0, t * (1.0 - u) / (1.0 - t), 0.0))
    return np.where(np.isnan(u), np.nan, score * MAX_EXTENDER_PRIORITY)


def least_allocated(pod: PodDemand, view: NodeView, params: ScoreParams) -> np.ndarray:
    """kube-scheduler's LeastAllocated + BalancedAllocation on requests (0..10)."""
    cpu_req = np.nan_to_num(view.cpu_requested) + pod.cpu
    mem_req = np.nan_to_num(view.mem_requested) + pod.memory
    cpu_frac = np.clip(_safe_div(cpu_req, view.cpu_alloc), 0.0, 1.0)
    mem_frac = np.clip(_safe_div(mem_req, view.mem_alloc), 0.0, 1.0)
    least = 1.0 - (cpu_frac + mem_frac) / 2.0
    balanced = 1.0 - np.abs(cpu_frac - mem_frac) / 2.0  # 1 - standard deviation of the two
    return (least + balanced) / 2.0 * MAX_EXTENDER_PRIORITY


#: Strategy name -> pure scoring function.
STRATEGIES: dict[str, Strategy] = {
    "load-aware": load_aware,
    "target-load-packing": target_load_packing,
    "least-allocated": least_allocated,
}


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; ValueError listing the known ones otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown scoring strategy {name!r}; choose one of: {', '.join(STRATEGIES)}") from None


def score_nodes(
    pod: PodDemand, view: NodeView, strategy: str | Strategy = "load-aware", params: ScoreParams | None = None
) -> np.ndarray:
    """Integer extender scores, one per node of ``view``.

    Parameters
    ----------
    pod : PodDemand
    view : NodeView
        ``n`` nodes.
    strategy : str or callable
        A name from :data:`STRATEGIES` or a strategy function.
    params : ScoreParams, optional

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Scores in ``0..10``; nodes the strategy could not judge get the neutral 5.
    """
    func = get_strategy(strategy) if isinstance(strategy, str) else strategy
    raw = func(pod, view, params or ScoreParams())
    neutral = MAX_EXTENDER_PRIORITY // 2
    raw = np.where(np.isfinite(raw), raw, neutral)
    return np.clip(np.rint(raw), 0, MAX_EXTENDER_PRIORITY).astype(np.int64)
