"""Kubernetes objects for a batch job: pure functions of (job, environment, identity, settings).

A job's pods get exactly what the user's session pod gets — the environment's
image, resources and data volumes, the SSO uid/gid — from the same
:func:`~beamhub.hub.pods.environment_overrides`.  EMC over N ranks becomes an
MPIJob where the Kubeflow MPI Operator is installed, else an Indexed Job with a
headless Service: pod 0 launches ``mpiexec`` over the pods' host names
(``<job>-<i>.<job>``), the others run the image's sshd on port 2222 as the user; passwordless
ssh between them uses the key in the user's ``~/.ssh`` on shared storage (the MPI Operator,
where installed, manages keys itself and is preferred).
"""

from __future__ import annotations

import shlex
from typing import Any

from beamhub.hub.catalog import Environment
from beamhub.hub.identity import Identity
from beamhub.hub.jobs.model import Job
from beamhub.hub.pods import (
    ClusterSettings,
    container_resources,
    environment_overrides,
    label_value,
    mounted,
    owner_metadata,
)
from beamhub.hub.session_env import session_environment

TTL_AFTER_FINISHED = 7 * 24 * 3600
SSH_PORT = 2222
# workers run sshd as the user (no root): a host key made at start, keys for the user from ~/.ssh
WORKER_SSHD = (
    f"ssh-keygen -q -t ed25519 -N '' -f /tmp/ssh_host_ed25519_key && "
    f"exec /usr/sbin/sshd -De -p {SSH_PORT} -h /tmp/ssh_host_ed25519_key -o PidFile=/tmp/sshd.pid"
)


def _labels(job: Job) -> dict[str, str]:
    """Labels of every object of ``job``; values from user names are made valid (pods.label_value)."""
    owner, _ = owner_metadata(job.owner)
    return {
        "app.kubernetes.io/managed-by": "beamhub-jobs",
        "beamhub.io/job-id": label_value(job.id),
        **owner,
        "beamhub.io/kind": label_value(job.kind),
        "beamhub.io/environment": label_value(job.environment),
    }


def _annotations(job: Job) -> dict[str, str]:
    """The exact owner name, which a label may only carry sanitised."""
    _, annotations = owner_metadata(job.owner)
    return annotations


def pod_template(
    job: Job,
    env: Environment,
    identity: Identity,
    settings: ClusterSettings,
    command: list[str],
    name: str = "job",
    ranks: int = 1,
) -> dict[str, Any]:
    """The pod template shared by every kind of job (one container, the session's identity and mounts)."""
    o = environment_overrides(env, identity, settings)
    environment = session_environment(
        env, identity, mounts=mounted(env, identity, settings), ranks=ranks, extra={"BEAMHUB_JOB_ID": job.id}
    )
    container = {
        "name": name,
        "image": o["image"],
        "command": command,
        "env": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "resources": container_resources(o, ranks),
        "securityContext": o["container_security_context"],
        "volumeMounts": o["volume_mounts"],
    }
    if job.cwd:
        container["workingDir"] = job.cwd
    spec = {
        "restartPolicy": "Never",
        "securityContext": o["pod_security_context"],
        "containers": [container],
        "volumes": o["volumes"],
        "priorityClassName": o["priority_class_name"],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    if o.get("scheduler_name"):
        spec["schedulerName"] = o["scheduler_name"]
    if o["node_selector"]:
        spec["nodeSelector"] = o["node_selector"]
    if o["tolerations"]:
        spec["tolerations"] = o["tolerations"]
    return {"metadata": {"labels": _labels(job), "annotations": _annotations(job)}, "spec": spec}


def job_objects(
    job: Job,
    env: Environment,
    identity: Identity,
    settings: ClusterSettings,
    namespace: str,
    mpi_operator: bool = False,
) -> list[dict[str, Any]]:
    """Every object to create for ``job``, in creation order."""
    meta = {"name": job.id, "namespace": namespace, "labels": _labels(job), "annotations": _annotations(job)}
    policy = network_policy(job, meta)
    if job.ranks == 1:
        template = pod_template(job, env, identity, settings, job.command)
        return [
            policy,
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": meta,
                "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": TTL_AFTER_FINISHED, "template": template},
            },
        ]
    if mpi_operator:
        return [policy, _mpijob(job, env, identity, settings, meta)]
    return [policy, *_indexed_mpi(job, env, identity, settings, meta)]


def network_policy(job: Job, meta: dict[str, Any]) -> dict[str, Any]:
    """A job's pods talk to each other (MPI, ssh) and to DNS, and nothing else talks to them.

    Without it a job pod would sit outside every policy: open egress, and the MPI port open to
    every pod in the cluster.  Data volumes are mounted by the kubelet, not over the pod network.
    """
    same_job = {"podSelector": {"matchLabels": {"beamhub.io/job-id": job.id}}}
    dns = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": dict(meta),
        "spec": {
            "podSelector": {"matchLabels": {"beamhub.io/job-id": job.id}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [same_job]}],
            "egress": [{"to": [same_job]}, {"ports": dns}],
        },
    }


def _mpijob(job, env, identity, settings, meta) -> dict[str, Any]:
    launcher = pod_template(
        job, env, identity, settings, ["mpirun", "-n", str(job.ranks), *job.command], name="launcher", ranks=job.ranks
    )
    worker = pod_template(job, env, identity, settings, ["/bin/sh", "-c", WORKER_SSHD], name="worker", ranks=job.ranks)
    for template in (launcher, worker):
        template["spec"].pop("restartPolicy")
    return {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": meta,
        "spec": {
            "slotsPerWorker": 1,
            "sshAuthMountPath": "/home/jovyan/.ssh",
            "runPolicy": {
                "cleanPodPolicy": "Running",
                "ttlSecondsAfterFinished": TTL_AFTER_FINISHED,
                "backoffLimit": 0,
            },
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "restartPolicy": "Never", "template": launcher},
                "Worker": {"replicas": job.ranks, "restartPolicy": "Never", "template": worker},
            },
        },
    }


def _indexed_mpi(job, env, identity, settings, meta) -> list[dict[str, Any]]:
    hosts = ",".join(f"{job.id}-{i}.{job.id}" for i in range(job.ranks))
    launch = (
        'if [ "$JOB_COMPLETION_INDEX" = 0 ]; then '
        f'exec mpiexec --mca plm_rsh_args "-p {SSH_PORT}" -n {job.ranks} --host {hosts} '
        + " ".join(_shell_quote(a) for a in job.command)
        + f"; else {WORKER_SSHD}; fi"
    )
    template = pod_template(job, env, identity, settings, ["/bin/sh", "-c", launch], ranks=job.ranks)
    template["spec"]["subdomain"] = job.id
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "clusterIP": "None",
            "selector": {"beamhub.io/job-id": job.id},
            "ports": [{"name": "ssh", "port": SSH_PORT}],
            "publishNotReadyAddresses": True,
        },
    }
    indexed = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "completionMode": "Indexed",
            "completions": job.ranks,
            "parallelism": job.ranks,
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED,
            # the workers' sshd never exits on its own: the job is done when the launcher is
            "successPolicy": {"rules": [{"succeededIndexes": "0"}]},
            "template": template,
        },
    }
    return [service, indexed]


def _shell_quote(arg: str) -> str:

    return shlex.quote(arg)
