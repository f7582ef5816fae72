"""Batch jobs from a user's session: `beamhub submit|jobs|logs|cancel`.

A JupyterHub service of ours (:mod:`beamhub.hub.jobs.service`) takes requests
made with the user's own hub token, so sessions never hold cluster
credentials and a user sees and cancels only their own jobs.  It runs each job
through a backend: local processes on the embedded platform
(:mod:`~beamhub.hub.jobs.local`), Kubernetes Jobs on a cluster
(:mod:`~beamhub.hub.jobs.kube`, manifests from the pure builders in
:mod:`~beamhub.hub.jobs.manifests`).
"""
