"""The cluster simulator: deterministic for a seed, consistent bookkeeping, files written."""

import json

import numpy as np
import pytest

from beamhub.errors import UsageError
from beamhub.scheduler.commands.simulate import main
from beamhub.scheduler.simulate import ClusterSpec, run_simulation
from beamhub.scheduler.simulate.engine import simulate_policy
from beamhub.scheduler.simulate.workload import DEFAULT_ENVIRONMENTS, make_trace

SMALL = dict(hours=4.0, sessions=60, batch_jobs=30, cluster=ClusterSpec(cpu_nodes=4, gpu_nodes=2, gpus_per_node=8))


def test_same_seed_same_results_other_seed_other_trace():
    runs_a, rows_a, _ = run_simulation(seed=7, **SMALL)
    runs_b, rows_b, _ = run_simulation(seed=7, **SMALL)
    assert rows_a == rows_b
    for a, b in zip(runs_a, runs_b):
        np.testing.assert_array_equal(a.util, b.util)
        np.testing.assert_array_equal(a.node_of, b.node_of)
    _, rows_c, _ = run_simulation(seed=8, **SMALL)
    assert rows_c != rows_a


def test_requests_never_exceed_capacity_and_pods_are_accounted_for():
    cluster = SMALL["cluster"]
    trace = make_trace(3, sessions=60, batch_jobs=30, hours=4.0)
    cores, memory, gpus = cluster.arrays()
    demand = {k: k.demand() for k in trace.kinds}
    for policy in ("kube-default", "target-load-packing", "beamhub"):
        run = simulate_policy(trace, cluster, policy, seed=3, hours=4.0)
        started = run.node_of >= 0
        # every pod that arrived is started, rejected, or still waiting at the end
        arrived = trace.arrival <= 4 * 60 - 1
        waiting = arrived & ~started & ~run.rejected
        assert waiting.sum() == run.extra["pending_at_end"]
        assert not np.any(started & run.rejected) and not np.any(started & ~arrived)
        assert np.all(run.wait[started] >= 0) and np.all(np.isnan(run.wait[~started]))
        # replay the placements minute by minute: requests fit on every node at every minute
        start = trace.arrival + run.wait
        for minute in range(0, 240, 7):
            on = started & (start <= minute) & (start + trace.duration > minute)
            for resource, cap in (("cpu", cores), ("memory", memory), ("gpus", gpus)):
                used = np.bincount(
                    run.node_of[on],
                    weights=[getattr(demand[trace.kinds[k]], resource) for k in trace.kind[on]],
                    minlength=cluster.size,
                )
                assert np.all(used <= cap + 1e-6), (policy, minute, resource)
        # GPU sessions ran only on GPU nodes
        gpu_pods = started & np.array([trace.kinds[k].gpus > 0 for k in trace.kind])
        assert np.all(gpus[run.node_of[gpu_pods]] > 0)
        assert np.all((run.util >= 0) & (run.util <= 1))
        assert np.all(run.stranded_4 <= run.free_gpus) and np.all(run.stranded_1 <= run.stranded_4 + 1e-9)


def test_fragmentation_is_measured_against_a_known_layout():
    # One 8-GPU node; a single 4-GPU session leaves 4 free: usable for a 4-GPU request.
    # Seven 1-GPU sessions would leave 1 free: unusable for 4 GPUs.
    cluster = ClusterSpec(cpu_nodes=0, gpu_nodes=1, gpus_per_node=8)
    trace = make_trace(0, sessions=0, batch_jobs=0, hours=1.0)
    from dataclasses import replace

    trace = replace(
        trace,
        kind=np.array([2] * 7),
        is_session=np.ones(7, bool),
        arrival=np.zeros(7),
        duration=np.full(7, 600.0),
        mean=np.full(7, 0.1),
        amplitude=np.zeros(7),
        period=np.full(7, 60.0),
        phase=np.zeros(7),
    )
    assert trace.kinds[2].gpus == 1
    run = simulate_policy(trace, cluster, "beamhub", seed=0, hours=1.0)
    assert np.all(run.free_gpus == 1) and np.all(run.stranded_4 == 1) and np.all(run.stranded_1 == 0)
    assert not run.blocked_4.any()  # fewer than 4 free in total: not "blocked by fragmentation"


def test_cli_writes_tables_and_plots(tmp_path, capsys):
    out = tmp_path / "sim"
    assert (
        main(
            [
                "cluster",
                "--quiet",
                "--hours",
                "2",
                "--sessions",
                "20",
                "--batch",
                "10",
                "--cpu-nodes",
                "3",
                "--gpu-nodes",
                "1",
                "--seed",
                "5",
                "--out",
                str(out),
            ],
            "beamhub simulate",
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| kube-default |" in printed and "| beamhub |" in printed
    data = json.loads((out / "results.json").read_text())
    assert [r["policy"] for r in data["results"]] == ["kube-default", "target-load-packing", "beamhub"]
    assert data["meta"]["seed"] == 5
    for png in ("node_cpu_over_time.png", "node_cpu_cdf.png", "gpu_fragmentation.png", "time_to_start.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--policies", "random"], "unknown policy"),
        (["--cpu-nodes", "0", "--gpu-nodes", "0"], "at least one node"),
        (["--hours", "0"], "--hours"),
    ],
)
def test_cli_rejects_bad_input(argv, words):
    with pytest.raises(UsageError, match=words):
        main(["--quiet", *argv], "beamhub simulate cluster")


def test_environments_file(tmp_path):
    from beamhub.scheduler.simulate.workload import load_environments

    path = tmp_path / "envs.yaml"
    path.write_text(
        "- {slug: small, cpu: 1, memory_gib: 2, share: 2}\n- {slug: big, cpu: 4, gpus: 2, qos: Guaranteed}\n"
    )
    envs = load_environments(path)
    assert [e.slug for e in envs] == ["small", "big"] and envs[1].gpus == 2 and envs[0].cpu_limit == 1
    path.write_text("- {slug: x, cpu: 1, colour: red}\n")
    with pytest.raises(UsageError, match="entry 0: unknown key"):
        load_environments(path)
    assert len(DEFAULT_ENVIRONMENTS) == 4
