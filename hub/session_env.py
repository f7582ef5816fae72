"""One place that builds a session's environment variables, as JupyterHub's ``Spawner.get_env`` does.

Every path that starts user code — the local spawner, BeamSpawner on Kubernetes, the local
and the Kubernetes job backends — takes its BEAMHUB_* variables from
:func:`session_environment`, so a notebook and a batch job of the same environment and user
see the same identity, data mounts, thread counts and limits.  Four hand-written copies of
this dict had drifted apart (a local batch job got no BEAMHUB_DATA_*); this module is the fix.

What it does not decide: which data mounts a session really gets (the caller knows whether a
mount has a volume on this cluster or a folder on this machine, and passes those), and the
hub's own variables (JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_PREFIX, ...), which
``Spawner.get_env`` adds for sessions and which a batch job must not inherit.

Everything here is a pure function of its arguments: no process, file or network access.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from beamhub.hub.catalog import Environment, Mount
from beamhub.hub.identity import Identity

#: Variables that size thread pools (OpenMP, BLAS, our FFT helper) to the CPU limit.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BEAMHUB_THREADS")

#: The PATH a process gets when nothing is inherited (Debian's default for a normal user).
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

#: Where ``beamhub``, ``python`` and ``jupyter`` of this installation are: the venv's bin
#: (the folder of the interpreter's name as started, not of the file it links to).
BIN_DIR = str(Path(sys.executable).parent)


def data_variable(mount: Mount) -> str:
    """The variable naming a mount's path in a session: ``raw-tomo`` -> ``BEAMHUB_DATA_RAW_TOMO``."""
    return "BEAMHUB_DATA_" + mount.name.upper().replace("-", "_").replace(".", "_")


def thread_count(env: Environment, ranks: int = 1) -> int:
    """Threads per process: the environment's whole CPU limit shared by ``ranks`` MPI ranks (at least 1)."""
    return max(1, int(env.cpu.limit) // max(1, ranks))


def session_environment(
    env: Environment,
    identity: Identity | None,
    *,
    mounts: Iterable[Mount] = (),
    jobs_url: str = "",
    ranks: int = 1,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The BeamHub variables of a session (or batch job) running ``env`` as ``identity``.

    Parameters
    ----------
    env : Environment
        The catalog entry being started.
    identity : Identity or None
        The user's SSO identity (BEAMHUB_USER, _UID, _GID, _GIDS, _GROUPS); None adds none.
    mounts : iterable of Mount
        The catalog mounts this session really gets — the caller has already checked the
        user's groups and that the mount exists where the session runs.  Each gives
        ``BEAMHUB_DATA_<NAME>`` = its ``mount_path``.
    jobs_url : str
        The jobs service URL, given as BEAMHUB_JOBS_URL for ``beamhub submit`` (omitted when "").
    ranks : int
        MPI ranks sharing the CPU limit (batch jobs); thread counts are divided among them.
    extra : mapping, optional
        The caller's own variables (BEAMHUB_JOB_ID, tokens...), applied last.

    Returns
    -------
    dict of str to str
        In order of precedence, lowest first: limits and thread counts from the catalog's
        resources; the environment's ``local.env`` (which may tune threads or the backend);
        the authoritative variables — environment, image, QoS, data mounts, jobs URL and
        identity — which a catalog entry cannot override; then ``extra``.

    Examples
    --------
    >>> from beamhub.hub.catalog import load_catalog
    >>> tomo = load_catalog().get("tomo")
    >>> session_environment(tomo, None)["OMP_NUM_THREADS"]
    '4'
    """
    threads = str(thread_count(env, ranks))
    environment = {
        "CPU_LIMIT": f"{env.cpu.limit:g}",
        "MEM_LIMIT": str(int(env.memory.limit)),
        **{name: threads for name in THREAD_VARIABLES},
    }
    environment.update({str(k): str(v) for k, v in env.local_env.items()})
    environment.update(
        {
            "BEAMHUB_ENVIRONMENT": env.slug,
            "BEAMHUB_ENVIRONMENT_TITLE": env.title,
            "BEAMHUB_IMAGE": env.image,
            "BEAMHUB_QOS": env.qos,
        }
    )
    for mount in mounts:
        environment[data_variable(mount)] = mount.mount_path
    if jobs_url:
        environment["BEAMHUB_JOBS_URL"] = jobs_url
    if identity is not None:
        environment.update(identity.environment())
    if extra:
        environment.update({str(k): str(v) for k, v in extra.items()})
    return environment


def on_this_machine(mounts: Iterable[Mount], data_base: str | os.PathLike) -> list[Mount]:
    """``mounts`` with each ``mount_path`` replaced by the folder that holds its data on this machine.

    The embedded platform mounts nothing: a mount's data is the folder ``data_base/local_path``,
    so BEAMHUB_DATA_<NAME> must name that folder in a local session and a local batch job alike
    (``/data/raw/tomo`` exists only in a pod).
    """
    return [replace(m, mount_path=str((Path(data_base) / m.local_path).resolve())) for m in mounts]


def local_path(bin_dir: str = BIN_DIR, inherited: str | None = None) -> str:
    """PATH for a local session or job: this installation's ``bin`` first, then ``inherited``.

    ``bin_dir`` is the folder of the interpreter running BeamHub (the venv's ``bin``, where
    ``beamhub``, ``python`` and ``jupyter`` are); without it first, a session's terminal
    answered "command not found" to the README's first batch command.  Duplicates are
    dropped; an empty ``inherited`` falls back to :data:`DEFAULT_PATH`.

    >>> local_path("/opt/venv/bin", "/usr/bin:/opt/venv/bin:/bin")
    '/opt/venv/bin:/usr/bin:/bin'
    """
    parts = [bin_dir, *(inherited or DEFAULT_PATH).split(os.pathsep)]
    return os.pathsep.join(dict.fromkeys(p for p in parts if p))
