"""Pure policies: filter reasons and strategy rankings against hand-computed answers."""

import numpy as np
import pytest
from sched_objects import GIB, load, make_node, make_pod

from beamhub.scheduler.load import LoadSnapshot, NodeLoad
from beamhub.scheduler.models import NodeInfo, PodDemand
from beamhub.scheduler.policy import NodeView, ScoreParams, filter_nodes, get_strategy, score_nodes
from beamhub.scheduler.policy.score import least_allocated, load_aware, target_load_packing


def nodes(*specs):
    return [NodeInfo.from_json(make_node(name, **kw)) for name, kw in specs]


def test_filter_conditions_are_unresolvable_with_reasons():
    infos = nodes(
        ("ok", {}),
        ("disk", {"conditions": {"DiskPressure": "True"}}),
        ("pid", {"conditions": {"PIDPressure": "True"}}),
        ("notready", {"conditions": {"Ready": "Unknown"}}),
        ("cordoned", {"unschedulable": True}),
    )
    names = [n.name for n in infos]
    verdict = filter_nodes(PodDemand.from_json(make_pod()), names, infos, None)
    assert verdict.passed == ["ok"]
    assert verdict.unresolvable == {
        "disk": "node has DiskPressure",
        "pid": "node has PIDPressure",
        "notready": "node is not Ready (Ready=Unknown)",
        "cordoned": "node is cordoned (spec.unschedulable is true)",
    }
    assert verdict.failed == {}


def test_filter_measured_gpu_and_memory_headroom():
    infos = nodes(("g-busy", {"gpus": 4}), ("g-free", {"gpus": 4}), ("full-mem", {}), ("full-disk", {}))
    snap = LoadSnapshot(
        {
            "g-busy": load(gpus_requested=3.0),
            "g-free": load(gpus_requested=1.0),
            "full-mem": load(mem_avail_gib=3.0),
            "full-disk": load(fs_free=0.01),
        },
        fetched_at=1.0,
    )
    pod = PodDemand.from_json(make_pod(gpus=2, memory="4Gi"))
    verdict = filter_nodes(pod, [n.name for n in infos], infos, snap)
    assert verdict.passed == ["g-free"]
    assert "1 GPU(s) free" in verdict.failed["g-busy"] and "pod needs 2" in verdict.failed["g-busy"]
    # kube-scheduler's own fit check covers allocatable; unmeasured GPU use is not held against a node
    assert "insufficient measured memory" in verdict.failed["full-mem"]
    assert "root filesystem nearly full" in verdict.unresolvable["full-disk"]
    cpu_pod = PodDemand.from_json(make_pod(memory="4Gi"))
    verdict = filter_nodes(cpu_pod, [n.name for n in infos], infos, snap)
    assert verdict.failed == {"full-mem": verdict.failed["full-mem"]}
    assert "3.0 GiB available" in verdict.failed["full-mem"]


def test_unknown_nodes_pass_and_no_snapshot_means_conditions_only():
    pod = PodDemand.from_json(make_pod(gpus=8))
    verdict = filter_nodes(pod, ["x", "y"], [None, None], None)
    assert verdict.passed == ["x", "y"]


def view_of(infos, rows):
    return NodeView.build([n.name for n in infos], infos, LoadSnapshot(rows, fetched_at=1.0))


def test_load_aware_prefers_idle_quiet_node():
    infos = nodes(("idle", {}), ("busy", {}), ("iowait", {}), ("netsat", {}))
    view = view_of(
        infos,
        {
            "idle": load(cpu=0.1),
            "busy": load(cpu=0.7),
            "iowait": load(cpu=0.1, iowait=0.3),
            "netsat": load(cpu=0.1, net=1.25e9),
        },
    )
    scores = score_nodes(PodDemand.from_json(make_pod()), view)
    assert scores[0] == scores.max() and scores[0] > scores[1] and scores[0] > scores[2] and scores[0] > scores[3]
    assert scores.dtype == np.int64 and scores.min() >= 0 and scores.max() <= 10


def test_load_aware_hot_spot_penalty():
    infos = nodes(("hot", {}), ("warm", {}))
    view = view_of(infos, {"hot": load(cpu=0.85), "warm": load(cpu=0.6)})
    raw = load_aware(PodDemand.from_json(make_pod(cpu="2")), view, ScoreParams())
    # hot: predicted 0.85 + 2/16 = 0.975 > 0.9 -> a quarter of its headroom score
    assert raw[0] < 0.5 * raw[1]


def test_load_aware_hand_computed_value():
    infos = nodes(("n", {"cpu": "10", "memory": "100Gi"}))
    row = NodeLoad(
        cpu_util=0.3, iowait=0.05, mem_available=60 * GIB, mem_total=100 * GIB, net_bytes=0.25e9, fs_free=0.5
    )
    view = view_of(infos, {"n": row})
    pod = PodDemand.from_json(make_pod(cpu="1", memory="10Gi"))  # Guaranteed
    terms = [1 - (0.3 + 0.1), 0.5, 1 - 0.05 / 0.25, 1 - 0.25 / 1.25, 1.0]
    weights = [0.30, 0.20, 0.15, 0.15, 0.20]
    expected = 10 * sum(t * w for t, w in zip(terms, weights))
    assert load_aware(pod, view, ScoreParams())[0] == pytest.approx(expected)


def test_load_aware_gpu_best_fit_and_cpu_pods_avoid_gpu_nodes():
    infos = nodes(("cpu", {}), ("g2", {"gpus": 4}), ("g4", {"gpus": 4}))
    rows = {"cpu": load(), "g2": load(gpus_requested=2.0, gpu_util=0.0), "g4": load(gpus_requested=0.0, gpu_util=0.0)}
    view = view_of(infos, rows)
    one_gpu = score_nodes(PodDemand.from_json(make_pod(gpus=2)), view)
    assert one_gpu[1] > one_gpu[2]  # two free of four: filling them strands no GPU
    cpu_only = score_nodes(PodDemand.from_json(make_pod()), view)
    assert cpu_only[0] > cpu_only[1] and cpu_only[0] > cpu_only[2]


def test_unmeasured_node_is_neutral():
    infos = nodes(("measured", {}), ("unknown", {}))
    view = view_of(infos, {"measured": load(cpu=0.0)})
    scores = score_nodes(PodDemand.from_json(make_pod()), view)
    assert scores[1] == 5 and scores[0] != 5


@pytest.mark.parametrize(
    "util, expected",
    [(0.0, 0.4 + 0.6 * 0.1 / 0.4), (0.3, 0.4 + 0.6 * 0.4 / 0.4 - 0.0), (0.7, 0.4 * (1 - 0.8) / 0.6), (0.95, 0.0)],
)
def test_target_load_packing_formula(util, expected):
    # 20 cores, pod limit 2 cores -> +0.1 utilisation; target 0.4
    infos = nodes(("n", {"cpu": "20"}))
    view = view_of(infos, {"n": load(cpu=util)})
    pod = PodDemand.from_json(make_pod(cpu="2"))
    assert target_load_packing(pod, view, ScoreParams(target=0.4))[0] == pytest.approx(10 * expected)


def test_least_allocated_matches_kube_default():
    infos = nodes(("n", {"cpu": "10", "memory": "10Gi"}))
    view = view_of(infos, {"n": load(cpu_requested=3.0, mem_requested=1.0 * GIB)})
    pod = PodDemand.from_json(make_pod(cpu="1", memory="1Gi"))
    cpu, mem = 0.4, 0.2
    expected = ((1 - (cpu + mem) / 2) + (1 - abs(cpu - mem) / 2)) / 2 * 10
    assert least_allocated(pod, view, ScoreParams())[0] == pytest.approx(expected)


def test_unknown_strategy_is_refused_by_name():
    with pytest.raises(ValueError, match="choose one of: load-aware"):
        get_strategy("random")
