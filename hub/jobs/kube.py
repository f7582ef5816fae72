"""Run jobs as Kubernetes objects (Job, Indexed Job + headless Service, or MPIJob).

The objects come from the pure builders in :mod:`beamhub.hub.jobs.manifests`;
this module only talks to the API server, with the jobs service's own
ServiceAccount — users never hold cluster credentials.  tests/cluster runs it
against the real API server of deploy/cluster.
"""

from __future__ import annotations

import time

from kubernetes_asyncio import client, config, utils
from kubernetes_asyncio.client.exceptions import ApiException

from beamhub.hub.catalog import Environment
from beamhub.hub.identity import Identity
from beamhub.hub.jobs.manifests import job_objects
from beamhub.hub.jobs.model import FINISHED, Job
from beamhub.hub.jobs.store import JobStore
from beamhub.hub.pods import ClusterSettings


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self, store: JobStore, namespace: str, settings: ClusterSettings | None = None, kubeconfig: str | None = None
    ):
        """``kubeconfig``: a file to use; None means in-cluster, else ``$KUBECONFIG`` or ~/.kube/config."""
        self.store, self.namespace, self.kubeconfig = store, namespace, kubeconfig
        self.settings = settings or ClusterSettings()
        self._api = None
        self._mpi_operator: bool | None = None

    async def _client(self):
        if self._api is None:
            configuration = client.Configuration()
            if self.kubeconfig:
                await config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
            else:
                try:
                    config.load_incluster_config(client_configuration=configuration)
                except config.ConfigException:
                    await config.load_kube_config(client_configuration=configuration)
            self._api = client.ApiClient(configuration)
        return self._api

    async def close(self) -> None:
        """Close the API client's connections."""
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def mpi_operator_installed(self) -> bool:
        """True when the Kubeflow MPI Operator's MPIJob CRD exists (checked once)."""
        if self._mpi_operator is None:
            try:
                await client.ApiextensionsV1Api(await self._client()).read_custom_resource_definition(
                    "mpijobs.kubeflow.org"
                )
                self._mpi_operator = True
            except ApiException:
                self._mpi_operator = False
        return self._mpi_operator

    async def submit(self, job: Job, identity: Identity, env: Environment) -> None:

        api = await self._client()
        mpi = job.ranks > 1 and await self.mpi_operator_installed()
        for obj in job_objects(job, env, identity, self.settings, self.namespace, mpi_operator=mpi):
            if obj["kind"] == "MPIJob":
                await client.CustomObjectsApi(api).create_namespaced_custom_object(
                    "kubeflow.org", "v2beta1", self.namespace, "mpijobs", obj
                )
            else:
                await utils.create_from_dict(api, obj, namespace=self.namespace)
        job.state, job.backend = "pending", "kubernetes (MPIJob)" if mpi else "kubernetes"
        self.store.save(job)

    async def refresh(self, job: Job) -> Job:
        if job.state in FINISHED:
            return job

        pods = await client.CoreV1Api(await self._client()).list_namespaced_pod(
            self.namespace, label_selector=f"beamhub.io/job-id={job.id}"
        )
        phases = [p.status.phase for p in pods.items]
        if any(p == "Failed" for p in phases):
            job.state, job.finished = "failed", time.time()
        elif phases and all(p == "Succeeded" for p in phases):
            job.state, job.finished = "succeeded", time.time()
        elif any(p == "Running" for p in phases):
            job.state = "running"
        self.store.save(job)
        return job

    async def logs(self, job: Job) -> str:

        core = client.CoreV1Api(await self._client())
        pods = await core.list_namespaced_pod(self.namespace, label_selector=f"beamhub.io/job-id={job.id}")
        parts = []
        for pod in sorted(pods.items, key=lambda p: p.metadata.name):
            text = await core.read_namespaced_pod_log(pod.metadata.name, self.namespace)
            parts.append(f"==> {pod.metadata.name} <==\n{text}")
        return "\n".join(parts)

    async def cancel(self, job: Job) -> None:

        api = await self._client()
        body = client.V1DeleteOptions(propagation_policy="Background")
        if job.backend.endswith("(MPIJob)"):
            await client.CustomObjectsApi(api).delete_namespaced_custom_object(
                "kubeflow.org", "v2beta1", self.namespace, "mpijobs", job.id
            )
        else:
            await client.BatchV1Api(api).delete_namespaced_job(job.id, self.namespace, body=body)
            if job.ranks > 1:
                await client.CoreV1Api(api).delete_namespaced_service(job.id, self.namespace)
        await client.NetworkingV1Api(api).delete_namespaced_network_policy(job.id, self.namespace)
        job.state, job.finished = "cancelled", time.time()
        self.store.save(job)
