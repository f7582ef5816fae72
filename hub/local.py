"""LocalBeamSpawner: the environment catalog on local processes — BeamHub's embedded default.

Each user gets a working directory (``workspace_root/<name>``) with the example
notebooks copied in on first start; the chosen environment's settings are
applied (its ``local.env`` such as BEAMHUB_BACKEND, thread counts from its CPU
limit, a memory limit through RLIMIT_DATA where the OS allows); and the SSO
identity is visible in the session as BEAMHUB_USER/UID/GID/GIDS/GROUPS.

Users need not exist on this machine: when the hub runs as a normal user,
every session runs as that user (like SimpleLocalProcessSpawner); when it runs
as root, sessions run as root with ``--allow-root`` (the single-user server
refuses root otherwise and JupyterHub answers the spawn with a bare 500).
Real per-user isolation is what BeamSpawner on Kubernetes gives.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Unicode, default

from beamhub.hub.catalog import Environment
from beamhub.hub.menu import EnvironmentMenuMixin

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BEAMHUB_THREADS")


def _repo_notebooks() -> str:
    """The notebooks/ folder of this checkout (editable install), if there is one."""
    candidate = Path(__file__).resolve().parent.parent / "notebooks"
    return str(candidate) if candidate.is_dir() else ""


class LocalBeamSpawner(EnvironmentMenuMixin, LocalProcessSpawner):
    """Start the chosen catalog environment as a local JupyterLab process."""

    workspace_root = Unicode(
        "",
        config=True,
        help="Folder holding one working directory per user (default: ./beamhub-users).",
    )
    data_root = Unicode(
        "",
        config=True,
        help="Folder that catalog mounts' local_path values are relative to (default: workspace_root/..).",
    )
    notebooks_dir = Unicode(
        config=True,
        help="Example notebooks copied into a user's working directory on first start.",
    )
    apply_memory_limit = Bool(
        True,
        config=True,
        help="Apply the environment's memory limit to the session as RLIMIT_DATA (Linux).",
    )

    @default("notebooks_dir")
    def _notebooks_dir_default(self):
        return _repo_notebooks()

    @default("workspace_root")
    def _workspace_root_default(self):
        return os.path.abspath("beamhub-users")

    @default("cmd")
    def _cmd_default(self):
        # the single-user server of the Python running the hub, whatever PATH says
        return [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]

    @default("default_url")
    def _default_url_default(self):
        return "/lab"

    @default("start_timeout")
    def _start_timeout_default(self):
        return 120

    @default("http_timeout")
    def _http_timeout_default(self):
        return 120

    @property
    def workspace(self) -> Path:
        return Path(self.workspace_root) / self.user.name

    # ---- environment -> process settings ----
    def apply_environment(self, env: Environment) -> None:
        """Environment variables, arguments and notebook folder for ``env``; limits go in preexec."""
        self.notebook_dir = str(self.workspace)
        extra = list(env.local_args)
        if os.geteuid() == 0 and "--allow-root" not in extra:
            extra.append("--allow-root")
        self.args = extra
        cores = max(1, int(env.cpu.limit))
        environment = {
            "BEAMHUB_ENVIRONMENT": env.slug,
            "BEAMHUB_ENVIRONMENT_TITLE": env.title,
            "BEAMHUB_IMAGE": env.image,
            "BEAMHUB_QOS": env.qos,
            "CPU_LIMIT": f"{env.cpu.limit:g}",
            "MEM_LIMIT": str(int(env.memory.limit)),
            **{var: str(cores) for var in _THREAD_VARS},
        }
        for mount in env.mounts:
            if mount.allowed_for(self.user_groups()):
                environment[f"BEAMHUB_DATA_{mount.name.upper().replace('-', '_')}"] = mount.mount_path
        environment.update(env.local_env)
        if self.jobs_url:
            environment["BEAMHUB_JOBS_URL"] = self.jobs_url
        if self.identity:
            environment.update(self.identity.environment())
        self.chosen_environment = env
        self._session_env = environment

    def get_env(self):
        env = super().get_env()
        env.update(getattr(self, "_session_env", {}))
        return env

    def user_env(self, env):
        """HOME is the working directory: users need not exist in this machine's passwd."""
        env["USER"] = self.user.name
        env["HOME"] = str(self.workspace)
        env["SHELL"] = os.environ.get("SHELL", "/bin/bash")
        return env

    def make_preexec_fn(self, name):
        memory = int(self.chosen_environment.memory.limit) if (self.chosen_environment and self.apply_memory_limit) else 0
        workspace = str(self.workspace)

        def preexec():
            # Runs in the child between fork and exec: no logging, no allocation-heavy work.
            os.chdir(workspace)
            if memory:
                try:
                    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
                    cap = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
                    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
                except (ValueError, OSError):
                    pass  # where the OS does not allow it, the session runs without the cap

        return preexec

    # ---- workspace ----
    def prepare_workspace(self) -> int:
        """Create the user's working directory and data links; copy example notebooks on first start.

        Returns the number of notebooks copied (0 after the first start).
        """
        workspace = self.workspace
        first_start = not workspace.exists()
        workspace.mkdir(parents=True, exist_ok=True)
        copied = 0
        if first_start and self.notebooks_dir and Path(self.notebooks_dir).is_dir():
            for source in sorted(Path(self.notebooks_dir).glob("*.ipynb")):
                shutil.copy2(source, workspace / source.name)
                copied += 1
        self._link_data(workspace)
        return copied

    def _link_data(self, workspace: Path) -> None:
        """data/<mount> links to the environment's local data folders the user's groups may read."""
        if not self.chosen_environment:
            return
        base = Path(self.data_root) if self.data_root else Path(self.workspace_root).parent
        for mount in self.chosen_environment.mounts:
            if not mount.local_path or not mount.allowed_for(self.user_groups()):
                continue
            source = (base / mount.local_path).resolve()
            if not source.is_dir():
                continue
            link = workspace / "data" / mount.name
            link.parent.mkdir(exist_ok=True)
            if link.is_symlink() or link.exists():
                if link.is_symlink() and link.resolve() == source:
                    continue
                link.unlink()
            link.symlink_to(source, target_is_directory=True)

    async def start(self):
        self._reset_progress()
        env = self.chosen_environment or self.resolve_environment(self.user_options or {})
        if self.chosen_environment is None:
            self.apply_environment(env)
        self.report_progress(10, f"Preparing the workspace of {self.user.name}")
        copied = self.prepare_workspace()
        if copied:
            self.report_progress(25, f"Copied {copied} example notebook(s) into your workspace")
        self.report_progress(40, f"Starting {env.title} ({env.summary()})")
        url = await super().start()
        self.report_progress(70, "JupyterLab is starting; waiting for it to answer")
        return url
