"""Benchmark of the scheduler extender: POST /prioritize latency at 100, 1000 and 5000 nodes.

Run:  .venv/bin/python benchmarks/scheduler.py [--quick] [--no-sim]

1. HTTP round trip: the extender runs in its own process (aiohttp, a fresh static load snapshot so the load-aware
strategy really scores); this process sends requests one after another over a keep-alive
connection and times each round trip.  Both nodeCacheCapable modes are measured:

* ``names``  - ExtenderArgs with node names only (nodeCacheCapable: true);
* ``full``   - ExtenderArgs with whole v1.Node objects, as kube-scheduler sends them otherwise.

2. Service time in process: the same work without the HTTP stack (answer_prioritize + encoding),
   less sensitive to a busy machine.

Reference, measured in the same run on the same server / process: ``floor``, an endpoint of the same
aiohttp process that decodes the same body with json.loads and answers constant scores without
any policy.  The ratio ours / floor is the cost of parsing into models and scoring on top of
HTTP + JSON.  Aim from issue 9: p99 under 10 ms at 1000 nodes.

Then the headline simulator run (24 CPU + 8 GPU nodes, one day, seeds 0-2) is printed as a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import socket
import statistics
import sys
import time

import numpy as np
import requests
from aiohttp import web

from beamhub.scheduler.app import STATE_KEY, _dumps, answer_prioritize, create_app
from beamhub.scheduler.load import LoadSnapshot, NodeLoad, StaticLoadSource
from beamhub.scheduler.models import NodeInfo
from beamhub.scheduler.settings import SchedulerSettings
from beamhub.scheduler.simulate import run_simulation
from beamhub.scheduler.simulate.report import COLUMNS, markdown_table

GIB = 2**30


def make_node(i: int) -> dict:
    gpus = 8 if i % 5 == 0 else 0
    allocatable = {
        "cpu": "64" if gpus else "32",
        "memory": "512Gi" if gpus else "256Gi",
        "pods": "110",
        "ephemeral-storage": "95551679124",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    name = f"node-{i:05d}"
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{i}",
            "resourceVersion": "98765",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "gpu-a100" if gpus else "cpu-epyc",
                "beamhub.io/node-class": "gpu-a100" if gpus else "cpu",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "capacity": dict(allocatable),
            "allocatable": allocatable,
            "conditions": [
                {
                    "type": t,
                    "status": "True" if t == "Ready" else "False",
                    "lastHeartbeatTime": "2026-11-23T17:00:00Z",
                    "lastTransitionTime": "2026-11-01T00:00:00Z",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
                for t in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
            ],
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.{i // 250}.{i % 250}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.30.2",
                "containerRuntimeVersion": "containerd://1.7.13",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


POD = {
    "metadata": {
        "name": "jupyter-alice",
        "namespace": "beamhub",
        "uid": "u-1",
        "labels": {"component": "singleuser-server"},
    },
    "spec": {
        "containers": [
            {
                "name": "notebook",
                "image": "ghcr.io/beamhub/gpu:latest",
                "resources": {
                    "requests": {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": "1"},
                    "limits": {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": "1"},
                },
            }
        ],
        "schedulerName": "beamhub-scheduler",
    },
    "status": {"phase": "Pending", "qosClass": "Guaranteed"},
}


def build_app(n_nodes: int):
    """The extender app with a fresh static snapshot of n_nodes and its node cache filled."""

    rng = np.random.default_rng(0)
    nodes = [make_node(i) for i in range(n_nodes)]
    rows = {
        n["metadata"]["name"]: NodeLoad(
            cpu_util=float(rng.random()),
            iowait=float(0.1 * rng.random()),
            mem_available=float(rng.random() * 200 * GIB),
            mem_total=256.0 * GIB,
            net_bytes=float(rng.random() * 1e9),
            fs_free=0.5,
            gpu_util=float(rng.random()),
            gpus_requested=float(rng.integers(0, 8)),
            cpu_requested=float(rng.random() * 30),
        )
        for n in nodes
    }
    app = create_app(SchedulerSettings(), load_source=StaticLoadSource(LoadSnapshot(rows, fetched_at=time.time())))
    app[STATE_KEY].nodes.update([NodeInfo.from_json(n) for n in nodes])
    return app


def serve(port: int, n_nodes: int, ready) -> None:
    """Run the extender (see build_app) plus the /floor reference endpoint."""

    app = build_app(n_nodes)

    async def floor(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        names = body.get("nodenames") or [n["metadata"]["name"] for n in body["nodes"]["items"]]
        return web.Response(text=json.dumps([{"host": h, "score": 5} for h in names]), content_type="application/json")

    app.router.add_post("/floor", floor)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_requests(url: str, payload: bytes, count: int) -> np.ndarray:
    session = requests.Session()
    for _ in range(3):  # warm-up
        session.post(url, data=payload, headers={"Content-Type": "application/json"}).raise_for_status()
    out = np.empty(count)
    for k in range(count):
        t0 = time.perf_counter()
        reply = session.post(url, data=payload, headers={"Content-Type": "application/json"})
        reply.content  # noqa: B018 - read the body inside the timing
        out[k] = time.perf_counter() - t0
        reply.raise_for_status()
    return out * 1e3


def payloads_for(n: int) -> dict[str, bytes]:
    nodes = [make_node(i) for i in range(n)]
    return {
        "names": json.dumps({"pod": POD, "nodenames": [x["metadata"]["name"] for x in nodes]}).encode(),
        "full": json.dumps({"pod": POD, "nodes": {"metadata": {}, "items": nodes}}).encode(),
    }


def service_table(sizes: list[int], quick: bool) -> list[dict]:
    """In-process time of the /prioritize work (decode, parse, score, encode), no HTTP.

    Reference: json.loads of the same body plus json.dumps of constant scores.
    """

    rows = []
    for n in sizes:
        state = build_app(n)[STATE_KEY]
        for mode, payload in payloads_for(n).items():
            count = 30 if mode == "full" and n >= 5000 else (100 if quick else 300)

            def ours(state=state, payload=payload):
                status, body = answer_prioritize(state, payload)
                assert status == 200
                return _dumps(body)

            def floor(payload=payload):
                body = json.loads(payload)
                names = body.get("nodenames") or [x["metadata"]["name"] for x in body["nodes"]["items"]]
                return json.dumps([{"host": h, "score": 5} for h in names])

            times = {}
            for label, func in (("ours", ours), ("floor", floor)):
                func()
                samples = np.empty(count)
                for k in range(count):
                    t0 = time.perf_counter()
                    func()
                    samples[k] = time.perf_counter() - t0
                times[label] = samples * 1e3
            rows.append(
                {
                    "nodes": n,
                    "mode": mode,
                    "p50_ms": float(np.percentile(times["ours"], 50)),
                    "p99_ms": float(np.percentile(times["ours"], 99)),
                    "floor_p50_ms": float(np.percentile(times["floor"], 50)),
                    "floor_p99_ms": float(np.percentile(times["floor"], 99)),
                    "requests": count,
                }
            )
    return rows


def print_table(rows: list[dict]) -> None:
    print("| nodes | mode | p50 ms | p99 ms | floor p50 ms | floor p99 ms | p50 ours/floor | p99 ours/floor |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['nodes']} | {r['mode']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['floor_p50_ms']:.2f} | {r['floor_p99_ms']:.2f} | {r['p50_ms'] / r['floor_p50_ms']:.2f} | "
            f"{r['p99_ms'] / r['floor_p99_ms']:.2f} |"
        )


def latency_table(sizes: list[int], quick: bool) -> list[dict]:
    rows = []
    for n in sizes:
        port = free_port()
        ready = mp.Event()
        proc = mp.Process(target=serve, args=(port, n, ready), daemon=True)
        proc.start()
        ready.wait(60)
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                requests.get(base + "/healthz", timeout=1)
                break
            except requests.RequestException:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        for mode, payload in payloads_for(n).items():
            count = {100: 400, 1000: 300, 5000: 100}.get(n, 100)
            if mode == "full" and n >= 5000:
                count = 40
            if quick:
                count = max(20, count // 5)
            ours = time_requests(base + "/prioritize", payload, count)
            ref = time_requests(base + "/floor", payload, count)
            rows.append(
                {
                    "nodes": n,
                    "mode": mode,
                    "requests": count,
                    "p50_ms": float(np.percentile(ours, 50)),
                    "p99_ms": float(np.percentile(ours, 99)),
                    "floor_p50_ms": float(np.percentile(ref, 50)),
                    "floor_p99_ms": float(np.percentile(ref, 99)),
                }
            )
            r = rows[-1]
            print(
                f"  {n:5d} nodes {mode:5s}: p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms | "
                f"floor p50 {r['floor_p50_ms']:7.2f} ms  p99 {r['floor_p99_ms']:7.2f} ms | "
                f"p50 ratio {r['p50_ms'] / r['floor_p50_ms']:.2f}",
                flush=True,
            )
        proc.terminate()
        proc.join(10)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--no-sim", action="store_true", help="skip the simulator headline run")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {mp.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        "POST /prioritize round-trip latency (ours = beamhub extender, load-aware; floor = same server, "
        "json.loads + constant scores)"
    )
    rows = latency_table([100, 1000, 5000], args.quick)
    print()
    print("HTTP round trip (client and server on this machine):")
    print_table(rows)
    print()
    print("Service time in process (decode + parse + score + encode, no HTTP); floor = json.loads + json.dumps:")
    print_table(service_table([100, 1000, 5000], args.quick))
    if args.no_sim:
        return 0

    print()
    print(
        "Simulator headline: 24 CPU nodes (32 cores) + 8 GPU nodes (64 cores, 8 GPUs), 24 h, "
        "~600 sessions + ~400 batch jobs, extender weight 5, metrics 2 min late"
    )
    all_rows = []
    for seed in (0, 1, 2):
        t0 = time.perf_counter()
        _, rows_s, meta = run_simulation(seed=seed)
        print(
            f"\nseed {seed} ({meta['sessions']} sessions, {meta['batch_jobs']} batch jobs, "
            f"{time.perf_counter() - t0:.1f} s)"
        )
        print(markdown_table(rows_s))
        all_rows.append(rows_s)
    print("\nmean over seeds 0-2")
    mean_rows = []
    for i, first in enumerate(all_rows[0]):
        row = {"policy": first["policy"]}
        for key, _ in COLUMNS[1:]:
            row[key] = round(statistics.fmean(r[i][key] for r in all_rows), 1)
        mean_rows.append(row)
    print(markdown_table(mean_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
