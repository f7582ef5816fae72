"""Wire models: quantities, pods, nodes and the extender messages."""

import pytest
from sched_objects import GIB, full_args, make_node, make_pod, names_args

from beamhub.quantity import parse_quantity
from beamhub.scheduler.models import (
    ExtenderArgs,
    ExtenderFilterResult,
    HostPriority,
    HostPriorityList,
    NodeInfo,
    PodDemand,
    WireFormatError,
)


@pytest.mark.parametrize(
    "text, value",
    [
        ("500m", 0.5),
        ("2", 2.0),
        ("4Gi", 4 * GIB),
        ("1.5", 1.5),
        ("2e3", 2000.0),
        ("128974848", 128974848.0),
        ("129e6", 129e6),
        ("123Mi", 123 * 2**20),
        ("1k", 1000.0),
        (".5", 0.5),
        (3, 3.0),
        ("100n", 1e-7),
    ],
)
def test_quantities(text, value):
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "1Qi", "--1", "1e", True, None, [1], "1e999"])
def test_bad_quantities(text):
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_pod_requests_and_qos():
    pod = PodDemand.from_json(make_pod(cpu="1500m", memory="3Gi", gpus=2))
    assert (pod.cpu, pod.memory, pod.gpus) == (1.5, 3 * GIB, 2)
    assert pod.qos_class == "Guaranteed" and pod.cpu_limit == 1.5
    assert pod.name == "jupyter-alice" and pod.namespace == "beamhub"


@pytest.mark.parametrize(
    "limits, cpu, expected", [(True, "1", "Guaranteed"), (False, "1", "Burstable"), (False, None, "BestEffort")]
)
def test_qos_computed_when_status_lacks_it(limits, cpu, expected):
    pod = PodDemand.from_json(make_pod(cpu=cpu, limits=limits, qos_in_status=False))
    assert pod.qos_class == expected


def test_init_containers_take_the_max():
    assert PodDemand.from_json(make_pod(cpu="1", init_cpu="3")).cpu == 3.0
    assert PodDemand.from_json(make_pod(cpu="1", init_cpu="500m")).cpu == 1.0


def test_node_facts():
    node = NodeInfo.from_json(
        make_node("gpu-1", cpu="32", memory="256Gi", gpus=8, conditions={"DiskPressure": "True"}, unschedulable=True)
    )
    assert (node.cpu, node.memory, node.gpus) == (32, 256 * GIB, 8)
    assert node.conditions["DiskPressure"] == "True" and node.unschedulable


def test_args_both_modes():
    nodes = [make_node("a"), make_node("b")]
    full = ExtenderArgs.from_json(full_args(make_pod(), nodes))
    assert not full.node_cache_capable and full.names == ["a", "b"]
    assert full.nodes[0].raw == nodes[0]
    cached = ExtenderArgs.from_json(names_args(make_pod(), ["a", "b"]))
    assert cached.node_cache_capable and cached.names == ["a", "b"]


@pytest.mark.parametrize(
    "body, words",
    [
        ([], "ExtenderArgs must be a JSON object"),
        ({"nodenames": ["a"]}, "ExtenderArgs.pod is required"),
        ({"pod": {}}, "needs 'nodes'"),
        (
            {"pod": {"spec": {"containers": [{"resources": {"requests": {"cpu": "lots"}}}]}}, "nodenames": []},
            "pod.spec.containers[0].resources.requests['cpu']",
        ),
        ({"pod": {}, "nodes": {"items": [{"metadata": {}}]}}, "ExtenderArgs.nodes.items[0].metadata.name"),
        ({"pod": {}, "nodenames": ["a", 3]}, "array of strings"),
        ({"pod": {"metadata": {"labels": {"a": 1}}}, "nodenames": []}, "pod.metadata.labels['a']"),
    ],
)
def test_malformed_args_name_the_field(body, words):
    with pytest.raises(WireFormatError, match=None) as info:
        ExtenderArgs.from_json(body)
    assert words in str(info.value)


def test_results_use_upstream_keys():
    result = ExtenderFilterResult(node_names=["a"], failed_nodes={"b": "why"})
    assert result.to_json() == {
        "nodenames": ["a"],
        "failedNodes": {"b": "why"},
        "failedAndUnresolvableNodes": {},
        "error": "",
    }
    full = ExtenderFilterResult(nodes=[{"metadata": {"name": "a"}}]).to_json()
    assert full["nodes"]["items"] == [{"metadata": {"name": "a"}}] and "nodenames" not in full
    assert HostPriorityList([HostPriority("a", 7)]).to_json() == [{"host": "a", "score": 7}]


def test_kube_schedulers_own_key_spelling_is_read():
    """kube-scheduler's ExtenderArgs has no JSON tags: it sends Pod / NodeNames (seen on the real one)."""
    body = {
        "Pod": {
            "metadata": {"name": "p", "namespace": "u"},
            "spec": {"containers": [{"resources": {"requests": {"cpu": "2"}}}]},
        },
        "Nodes": None,
        "NodeNames": ["kwok-cpu-0", "kwok-gpu-0"],
    }
    args = ExtenderArgs.from_json(body)
    assert args.node_cache_capable and args.names == ["kwok-cpu-0", "kwok-gpu-0"]
    assert args.pod.name == "p" and args.pod.cpu == 2.0
