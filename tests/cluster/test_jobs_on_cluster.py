"""Batch jobs on the real API server: `beamhub submit|jobs|cancel` from alice's session.

The jobs service runs beside the hub with the Kubernetes backend and the cluster's kubeconfig;
users hold only their hub tokens.  KWOK runs a job's pods; a test ends a pod's container with
the annotation ``kwok.beamhub.io/exit-code`` (deploy/cluster/kwok-stages.yaml), which is the
kubelet's part.  Everything asserted is read back from the API server.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time

import pytest
from sso_client import login

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.jobs.kube import KubernetesBackend
from beamhub.hub.jobs.model import Job
from beamhub.hub.jobs.store import JobStore

MPIJOB_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "mpijobs.kubeflow.org"},
    "spec": {
        "group": "kubeflow.org",
        "scope": "Namespaced",
        "names": {"plural": "mpijobs", "singular": "mpijob", "kind": "MPIJob"},
        "versions": [
            {
                "name": "v2beta1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


@pytest.fixture(scope="module")
def tokens(kube_platform):
    """Hub API tokens of alice and bob, as their sessions hold them (JUPYTERHUB_API_TOKEN)."""
    out = {}
    for name in ("alice", "bob"):
        login(kube_platform.url, name, name)
        made = kube_platform.api.post(f"/users/{name}/tokens", json={"note": "cluster test session"})
        assert made.status_code in (200, 201), made.text
        out[name] = made.json()["token"]
    return out


def beamhub(kube_platform, token: str, *args: str, environment: str = "tomo") -> subprocess.CompletedProcess:
    """Run the `beamhub` command as it runs in a session pod (the session's env, no cluster credentials)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "JUPYTERHUB_API_TOKEN": token,
        "BEAMHUB_JOBS_URL": f"{kube_platform.url}/services/beamhub-jobs/",
        "BEAMHUB_ENVIRONMENT": environment,
    }
    return subprocess.run(
        [sys.executable, "-m", "beamhub", *args], env=env, capture_output=True, text=True, timeout=120, cwd="/"
    )


def submitted_id(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return re.search(r"submitted (\S+)", proc.stdout).group(1)


def job_pods(plane, job_id: str) -> list[dict]:
    return plane.get("pods", "-n", "beamhub", "-l", f"beamhub.io/job-id={job_id}")["items"]


def state_of(kube_platform, token, job_id) -> str:
    listing = json.loads(beamhub(kube_platform, token, "jobs", "--json").stdout)
    return next(j["state"] for j in listing if j["id"] == job_id)


def end_pod(plane, pod: dict, code: int) -> None:
    plane.kubectl("annotate", "pod", pod["metadata"]["name"], "-n", "beamhub", f"kwok.beamhub.io/exit-code={code}")


def test_single_pod_job_runs_as_alice_and_succeeds(kube_platform, tokens):
    plane = kube_platform.cluster.plane
    job_id = submitted_id(beamhub(kube_platform, tokens["alice"], "submit", "tomo", "scan.h5", "--out", "r.h5"))
    job = plane.get("job", job_id, "-n", "beamhub")
    assert job["metadata"]["labels"]["beamhub.io/owner"] == "alice"
    pods = plane.wait_for(
        lambda: [p for p in job_pods(plane, job_id) if p["status"].get("phase") == "Running"], "the job's pod Running"
    )
    spec = pods[0]["spec"]
    # admitted under restricted, as alice, without a service-account token, behind its NetworkPolicy
    assert spec["securityContext"]["runAsUser"] == 2001 and spec["automountServiceAccountToken"] is False
    assert spec["containers"][0]["command"] == ["beamhub", "tomo", "scan.h5", "--out", "r.h5"]
    assert not any(v["name"].startswith("kube-api-access") for v in spec.get("volumes", []))
    policy = plane.get("networkpolicy", job_id, "-n", "beamhub")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"beamhub.io/job-id": job_id}
    assert plane.wait_for(lambda: state_of(kube_platform, tokens["alice"], job_id) == "running", "running")
    end_pod(plane, pods[0], 0)
    plane.wait_for(lambda: state_of(kube_platform, tokens["alice"], job_id) == "succeeded", "state succeeded")
    listing = beamhub(kube_platform, tokens["alice"], "jobs").stdout
    assert re.search(rf"{job_id}\s+succeeded", listing), listing


def test_emc_over_four_ranks_is_an_indexed_job_that_can_fail(kube_platform, tokens):
    plane = kube_platform.cluster.plane
    job_id = submitted_id(
        beamhub(
            kube_platform,
            tokens["alice"],
            "submit",
            "emc",
            "--ranks",
            "4",
            "--environment",
            "spi-emc",
            "emc.ini",
            "--iterations",
            "5",
            environment="spi-emc",
        )
    )
    job = plane.get("job", job_id, "-n", "beamhub")
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 4
    service = plane.get("service", job_id, "-n", "beamhub")
    assert service["spec"]["clusterIP"] == "None"
    pods = plane.wait_for(
        lambda: (lambda ps: ps if len(ps) == 4 and all(p["status"].get("phase") == "Running" for p in ps) else None)(
            job_pods(plane, job_id)
        ),
        "4 rank pods Running",
    )
    assert {p["spec"]["hostname"] for p in pods} == {f"{job_id}-{i}" for i in range(4)}
    launcher = next(p for p in pods if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0")
    end_pod(plane, launcher, 3)
    plane.wait_for(lambda: state_of(kube_platform, tokens["alice"], job_id) == "failed", "state failed")


def test_cancel_deletes_the_job_and_bob_sees_none_of_alices(kube_platform, tokens):
    plane = kube_platform.cluster.plane
    job_id = submitted_id(beamhub(kube_platform, tokens["alice"], "submit", "tomo", "scan.h5", "--out", "r.h5"))
    assert plane.get("job", job_id, "-n", "beamhub")["metadata"]["name"] == job_id
    # bob: no job of alice's is listed, shown or cancellable
    assert job_id not in beamhub(kube_platform, tokens["bob"], "jobs").stdout
    theirs = beamhub(kube_platform, tokens["bob"], "cancel", job_id)
    assert theirs.returncode != 0 and "404" in theirs.stderr
    assert plane.get("job", job_id, "-n", "beamhub")["metadata"]["name"] == job_id
    cancelled = beamhub(kube_platform, tokens["alice"], "cancel", job_id)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    plane.wait_for(
        lambda: "NotFound" in plane.kubectl("get", "job", job_id, "-n", "beamhub", check=False),
        "the Job deleted from the API",
    )
    assert "NotFound" in plane.kubectl("get", "networkpolicy", job_id, "-n", "beamhub", check=False)


def test_mpijob_is_used_once_its_crd_is_installed(kube_platform, tmp_path):
    plane = kube_platform.cluster.plane
    alice = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))
    env = load_catalog().get("spi-emc")

    async def submit() -> tuple[bool, Job]:
        backend = KubernetesBackend(JobStore(tmp_path / "jobs"), namespace="beamhub", kubeconfig=str(plane.kubeconfig))
        try:
            found = await backend.mpi_operator_installed()
            job = Job(
                id=f"emc-{int(time.time() * 1000) % 10**8:08d}",
                owner="alice",
                kind="emc",
                args=["emc.ini"],
                cwd="",
                environment="spi-emc",
                ranks=2,
            )
            if found:
                await backend.submit(job, alice, env)
            return found, job
        finally:
            await backend.close()

    found, _ = asyncio.run(submit())
    assert found is False
    plane.apply(MPIJOB_CRD)
    try:
        plane.wait_for(
            lambda: "mpijobs" in plane.kubectl("api-resources", "--api-group=kubeflow.org"), "the MPIJob CRD served"
        )
        found, job = asyncio.run(submit())
        assert found is True
        mpijob = plane.get("mpijob", job.id, "-n", "beamhub")
        assert mpijob["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] == 2
        launcher = mpijob["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
        assert launcher["securityContext"]["runAsUser"] == 2001
    finally:
        plane.kubectl("delete", "crd", "mpijobs.kubeflow.org", "--wait=false")
