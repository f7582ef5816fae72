"""Discrete-time cluster simulation: one trace, one placement policy, minute by minute.

Each minute: finished pods leave; pods that arrived wait in the scheduling queue (sessions,
which carry a higher priority class, before batch jobs); each is placed on a node where its
requests fit (kube-scheduler's NodeResourcesFit) with the highest policy score, ties broken
at random (seeded), as kube-scheduler does; then every running pod's CPU use is summed per
node.  Load-aware policies see measurements ``metrics_lag`` minutes old (Prometheus scrape
plus rate window), requests-based scoring sees the scheduler's live cache.

Policies (:data:`POLICIES`):

``kube-default``
    NodeResourcesFit LeastAllocated + NodeResourcesBalancedAllocation on requests (0..200).
``target-load-packing``
    Trimaran's TargetLoadPacking on measured CPU (0..100), as Trimaran recommends it: alone.
``beamhub``
    kube-default plus our extender's integer ``load-aware`` score x ``extender_weight`` x 10,
    exactly as kube-scheduler adds an extender's priority (MaxNodeScore / MaxExtenderPriority = 10).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from beamhub.scheduler.models import PodDemand
from beamhub.scheduler.policy.score import ScoreParams, least_allocated, score_nodes, target_load_packing
from beamhub.scheduler.policy.view import NodeView
from beamhub.scheduler.simulate.workload import GIB, Trace

__all__ = ["POLICIES", "ClusterSpec", "PolicyRun", "simulate_policy"]

POLICIES = ("kube-default", "target-load-packing", "beamhub")
_HOT = 0.9


@dataclass(frozen=True)
class ClusterSpec:
    """The simulated nodes: CPU nodes followed by GPU nodes.

    Attributes
    ----------
    cpu_nodes, gpu_nodes : int
    cpu_node_cores, gpu_node_cores : float
    cpu_node_memory, gpu_node_memory : float
        Bytes.
    gpus_per_node : int
    system_cores : float
        CPU used on every node by the system (kubelet, exporters, daemons).
    """

    cpu_nodes: int = 24
    gpu_nodes: int = 8
    cpu_node_cores: float = 32.0
    gpu_node_cores: float = 64.0
    cpu_node_memory: float = 256 * GIB
    gpu_node_memory: float = 512 * GIB
    gpus_per_node: int = 8
    system_cores: float = 0.5

    @property
    def size(self) -> int:
        return self.cpu_nodes + self.gpu_nodes

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cores, memory bytes, GPUs) per node, shape ``(size,)`` each."""
        n_cpu, n_gpu = self.cpu_nodes, self.gpu_nodes
        cores = np.r_[np.full(n_cpu, self.cpu_node_cores), np.full(n_gpu, self.gpu_node_cores)]
        memory = np.r_[np.full(n_cpu, self.cpu_node_memory), np.full(n_gpu, self.gpu_node_memory)]
        gpus = np.r_[np.zeros(n_cpu), np.full(n_gpu, float(self.gpus_per_node))]
        return cores, memory, gpus


@dataclass
class PolicyRun:
    """What happened under one policy.

    Attributes
    ----------
    policy : str
    util : ndarray, shape (minutes, nodes)
        Node CPU utilisation, 0..1 (demand beyond capacity is clipped at 1).
    wait : ndarray, shape (n_pods,)
        Minutes from arrival to start; ``nan`` for pods never started.
    rejected : ndarray of bool, shape (n_pods,)
        Sessions given up after ``spawn_timeout`` minutes pending.
    node_of : ndarray of int, shape (n_pods,)
        Node index each pod ran on, -1 if never placed.
    free_gpus, stranded_1, stranded_4 : ndarray, shape (minutes,)
        Free GPUs, and those of them that cannot host a 1-GPU / 4-GPU session request.
    blocked_4 : ndarray of bool, shape (minutes,)
        At least 4 GPUs free in the cluster, yet no node can host a 4-GPU session.
    session_hot : float
        Session-minutes spent on a node above 90 % CPU.
    """

    policy: str
    util: np.ndarray
    wait: np.ndarray
    rejected: np.ndarray
    node_of: np.ndarray
    free_gpus: np.ndarray
    stranded_1: np.ndarray
    stranded_4: np.ndarray
    blocked_4: np.ndarray
    session_hot: float = 0.0
    extra: dict = field(default_factory=dict)


def _gpu_probe(trace: Trace, gpus: int) -> tuple[float, float]:
    """(cores, bytes) requested by the catalog's smallest session with ``gpus`` GPUs (0, 0 if none)."""
    found = [(k.cpu, k.memory) for k in trace.kinds if k.gpus == gpus]
    return min(found) if found else (0.0, 0.0)


def simulate_policy(
    trace: Trace,
    cluster: ClusterSpec,
    policy: str,
    *,
    seed: int,
    hours: float = 24.0,
    extender_weight: float = 5.0,
    metrics_lag: int = 2,
    spawn_timeout: float = 5.0,
    params: ScoreParams | None = None,
    progress=None,
) -> PolicyRun:
    """Replay ``trace`` on ``cluster`` placing pods with ``policy``.

    Parameters
    ----------
    trace : Trace
    cluster : ClusterSpec
    policy : str
        One of :data:`POLICIES`.
    seed : int
        Seeds the tie-breaking between equal scores.
    hours : float
        Simulated time.
    extender_weight : float
        The extender's ``weight`` in KubeSchedulerConfiguration (``beamhub`` policy).
    metrics_lag : int
        Minutes by which measurements trail reality.
    spawn_timeout : float
        Minutes a session may stay pending before the hub gives up (a rejected spawn).
    params : ScoreParams, optional
    progress : callable, optional
        Called with the number of minutes simulated since the last call.

    Returns
    -------
    PolicyRun
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")
    params = params or ScoreParams()
    rng = np.random.default_rng([seed, POLICIES.index(policy)])
    cores, memory, gpus = cluster.arrays()
    n_nodes, n_pods, minutes = cluster.size, len(trace), int(hours * 60)
    names = [f"node-{i}" for i in range(n_nodes)]
    demands = [k.demand() for k in trace.kinds]
    pod_cpu = np.array([d.cpu for d in demands])[trace.kind]
    pod_mem = np.array([d.memory for d in demands])[trace.kind]
    pod_gpu = np.array([d.gpus for d in demands])[trace.kind]
    batch_kind = ~trace.is_session
    probe1, probe4 = _gpu_probe(trace, 1), _gpu_probe(trace, 4)

    cpu_req = np.zeros(n_nodes)
    mem_req = np.zeros(n_nodes)
    gpu_req = np.zeros(n_nodes)
    node_of = np.full(n_pods, -1, dtype=np.int64)
    start = np.full(n_pods, np.nan)
    end = np.full(n_pods, np.inf)
    rejected = np.zeros(n_pods, dtype=bool)
    util = np.zeros((minutes, n_nodes))
    iowait_hist = np.zeros((minutes, n_nodes))
    gpu_util_hist = np.zeros((minutes, n_nodes))
    req_hist = np.zeros((minutes, 3, n_nodes))
    free_gpus = np.zeros(minutes)
    stranded_1 = np.zeros(minutes)
    stranded_4 = np.zeros(minutes)
    blocked_4 = np.zeros(minutes, dtype=bool)
    session_hot = 0.0

    pending: list[int] = []
    next_arrival = 0
    running = np.zeros(n_pods, dtype=bool)

    def choose(i: int, t: int) -> int:
        fits = (
            (cpu_req + pod_cpu[i] <= cores + 1e-9)
            & (mem_req + pod_mem[i] <= memory + 1e-9)
            & (gpu_req + pod_gpu[i] <= gpus + 1e-9)
        )
        candidates = np.flatnonzero(fits)
        if candidates.size == 0:
            return -1
        pod: PodDemand = demands[trace.kind[i]]
        live = NodeView.from_columns(
            [names[c] for c in candidates],
            cpu_alloc=cores[candidates],
            mem_alloc=memory[candidates],
            gpu_alloc=gpus[candidates],
            cpu_requested=cpu_req[candidates],
            mem_requested=mem_req[candidates],
            gpus_requested=gpu_req[candidates],
        )
        if policy == "kube-default":
            score = 20.0 * least_allocated(pod, live, params)
        else:
            seen = max(t - metrics_lag, 0) if t > 0 else None
            measured = dict(cpu_alloc=cores[candidates], mem_alloc=memory[candidates], gpu_alloc=gpus[candidates])
            if seen is not None:
                measured.update(
                    cpu_util=util[seen, candidates],
                    iowait=iowait_hist[seen, candidates],
                    gpu_util=np.where(gpus[candidates] > 0, gpu_util_hist[seen, candidates], np.nan),
                    cpu_requested=req_hist[seen, 0, candidates],
                    mem_requested=req_hist[seen, 1, candidates],
                    gpus_requested=req_hist[seen, 2, candidates],
                )
            view = NodeView.from_columns(live.names, **measured)
            if policy == "target-load-packing":
                score = 10.0 * np.nan_to_num(target_load_packing(pod, view, params), nan=0.0)
            else:
                score = 20.0 * least_allocated(pod, live, params) + 10.0 * extender_weight * score_nodes(
                    pod, view, "load-aware", params
                )
        best = np.flatnonzero(score >= score.max() - 1e-9)
        return int(candidates[best[rng.integers(best.size)]] if best.size > 1 else candidates[best[0]])

    for t in range(minutes):
        # pods that finished leave
        done = np.flatnonzero(running & (end <= t))
        if done.size:
            running[done] = False
            np.subtract.at(cpu_req, node_of[done], pod_cpu[done])
            np.subtract.at(mem_req, node_of[done], pod_mem[done])
            np.subtract.at(gpu_req, node_of[done], pod_gpu[done])
        # arrivals join the queue
        while next_arrival < n_pods and trace.arrival[next_arrival] <= t:
            pending.append(next_arrival)
            next_arrival += 1
        # sessions (higher priority class) first, each class in arrival order
        still: list[int] = []
        for i in sorted(pending, key=lambda j: (not trace.is_session[j], trace.arrival[j])):
            node = choose(i, t)
            if node < 0:
                if trace.is_session[i] and t - trace.arrival[i] > spawn_timeout:
                    rejected[i] = True
                else:
                    still.append(i)
                continue
            node_of[i], start[i], end[i] = node, float(t), t + trace.duration[i]
            running[i] = True
            cpu_req[node] += pod_cpu[i]
            mem_req[node] += pod_mem[i]
            gpu_req[node] += pod_gpu[i]
        pending = still
        # what the nodes do this minute
        active = np.flatnonzero(running)
        use = trace.usage(active, float(t))
        demand = np.bincount(node_of[active], weights=use, minlength=n_nodes) + cluster.system_cores
        util[t] = np.minimum(demand / cores, 1.0)
        batch_use = np.bincount(node_of[active], weights=use * batch_kind[active], minlength=n_nodes)
        iowait_hist[t] = np.minimum(0.4, 0.3 * batch_use / cores)
        gpu_busy = np.bincount(
            node_of[active],
            weights=pod_gpu[active]
            * use
            / np.maximum(np.array([k.cpu_limit for k in trace.kinds])[trace.kind[active]], 1e-9),
            minlength=n_nodes,
        )
        gpu_util_hist[t] = np.where(gpus > 0, gpu_busy / np.maximum(gpus, 1), 0.0)
        req_hist[t] = (cpu_req, mem_req, gpu_req)
        hot_nodes = util[t] > _HOT
        session_hot += float(np.sum(hot_nodes[node_of[active]] & trace.is_session[active]))
        # GPU fragmentation
        free = gpus - gpu_req
        free_cpu, free_mem = cores - cpu_req, memory - mem_req
        host1 = (free >= 1) & (free_cpu >= probe1[0]) & (free_mem >= probe1[1])
        host4 = (free >= 4) & (free_cpu >= probe4[0]) & (free_mem >= probe4[1])
        free_gpus[t] = free.sum()
        stranded_1[t] = free[~host1].sum()
        stranded_4[t] = free[~host4].sum()
        blocked_4[t] = free.sum() >= 4 and not host4.any()
        if progress is not None and (t % 60 == 59 or t == minutes - 1):
            progress(60 if t % 60 == 59 else t % 60 + 1)

    wait = np.where(np.isnan(start), np.nan, start - trace.arrival)
    return PolicyRun(
        policy=policy,
        util=util,
        wait=wait,
        rejected=rejected,
        node_of=node_of,
        free_gpus=free_gpus,
        stranded_1=stranded_1,
        stranded_4=stranded_4,
        blocked_4=blocked_4,
        session_hot=session_hot,
        extra={"pending_at_end": len(pending)},
    )
