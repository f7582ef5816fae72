"""Sessions in their environment's image on one machine: `beamhub up --sessions docker`.

The embedded platform normally runs a session as a local process of this checkout's Python.
With a Docker engine, :class:`DockerBeamSpawner` runs it in the catalog entry's own image
instead — the image and the identity a pod gets on Kubernetes — so what a user sees on a
laptop or a beamline workstation is what they get on the cluster:

- as the SSO identity: ``--user uid:gid`` and ``--group-add`` for each supplementary gid, every
  capability dropped, no new privileges, a read-only root filesystem with ``/tmp`` in memory
  (what PodSecurity ``restricted`` and BeamSpawner's pods require);
- with only the user's own workspace mounted (at ``/home/jovyan``, as on the cluster) and the
  catalog's data mounts their groups allow, read-only where the catalog says so, at the
  catalog's ``mount_path`` — so ``BEAMHUB_DATA_<NAME>`` names the same path as in a pod;
- on the host network, listening on 127.0.0.1 only, behind the hub's proxy like a local session;
- the environment's CPU and memory limits as Docker's ``--cpus`` and ``--memory``.

Everything else — the menu, the workspace preparation, the progress messages — is
:class:`~beamhub.hub.local.LocalBeamSpawner`'s.  The container's name is kept in the hub's state,
so a restarted hub finds a running session again, as it does for local processes.
"""

from __future__ import annotations

import asyncio
import os
import shutil

from jupyterhub.utils import random_port
from traitlets import Unicode, default

from beamhub.hub.catalog import Environment
from beamhub.hub.isolation import isolated
from beamhub.hub.local import LocalBeamSpawner, terminal_arguments
from beamhub.hub.session_env import session_environment

#: Where a session image has its user's space (images/*/Dockerfile: HOME, WORKDIR).
CONTAINER_HOME = "/home/jovyan"
#: Variables of the hub's own process that mean nothing inside an image (its PATH, its venv).
HOST_ONLY = {"PATH", "VIRTUAL_ENV", "PYTHONPATH", "LD_LIBRARY_PATH", "SHELL", "HOME", "USER"}


class DockerError(RuntimeError):
    """The engine refused or could not be reached; the message says what to do."""


class DockerBeamSpawner(LocalBeamSpawner):
    """Run the chosen catalog environment in its own image, as the user's uid/gid, with only their data."""

    docker = Unicode(
        config=True,
        help="The Docker CLI to run (default: docker on PATH, else /usr/bin/docker).",
    )

    @default("docker")
    def _docker_default(self):
        return shutil.which("docker") or "/usr/bin/docker"

    container_name = Unicode("")

    @property
    def name_for_container(self) -> str:
        suffix = f"-{self.name}" if self.name else ""
        return f"beamhub-session-{self.user.name}{suffix}"

    # ---- state: the hub finds the container again after a restart ----
    def get_state(self):
        state = super().get_state()
        if self.container_name:
            state["container"] = self.container_name
        return state

    def load_state(self, state):
        super().load_state(state)
        self.container_name = state.get("container", "")

    def clear_state(self):
        super().clear_state()
        self.container_name = ""

    # ---- the engine ----
    async def _docker(self, *args: str, check: bool = True) -> tuple[int, str]:
        """Run the Docker CLI without blocking the hub; (exit status, output)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                self.docker, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
        except OSError as exc:
            raise DockerError(
                f"cannot run {self.docker}: {exc.strerror}; install Docker "
                "(Debian: apt-get install docker.io) or start sessions as local processes"
            ) from None
        out, _ = await proc.communicate()
        text = out.decode(errors="replace").strip()
        if check and proc.returncode != 0:
            raise DockerError(f"docker {args[0]} failed: {text.splitlines()[-1] if text else proc.returncode}")
        return proc.returncode, text

    # ---- what the container gets ----
    def container_environment(self, env: Environment) -> dict[str, str]:
        """The session's variables as the image sees them: JupyterHub's, BeamHub's, no host paths."""
        variables = {k: v for k, v in super().get_env().items() if k not in HOST_ONLY}
        variables.update(
            session_environment(env, self.identity, mounts=self.session_mounts(env), jobs_url=self.jobs_url)
        )
        variables["HOME"] = CONTAINER_HOME
        variables["USER"] = self.user.name
        return variables

    def user_arguments(self) -> list[str]:
        """Who the container runs as: the SSO identity when the hub is root (isolated mode), else
        the invoking user, whose workspace it is in personal mode."""
        identity = self.identity
        if not isolated() or identity is None:
            return ["--user", f"{os.getuid()}:{os.getgid()}"]
        args = ["--user", f"{identity.uid}:{identity.gid}"]
        for gid in identity.gids:
            if gid != identity.gid:
                args += ["--group-add", str(gid)]
        return args

    def run_arguments(self, env: Environment) -> list[str]:
        """``docker run`` options and command for ``env`` (the image's own entrypoint is kept)."""
        args = [
            "run",
            "--detach",
            "--name",
            self.name_for_container,
            "--network",
            "host",
            "--label",
            "org.beamhub.session=true",
            "--label",
            f"org.beamhub.user={self.user.name}",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "--tmpfs",
            "/tmp:exec,mode=1777",
            "--workdir",
            CONTAINER_HOME,
            "--volume",
            f"{self.workspace}:{CONTAINER_HOME}:rw",
        ]
        args += self.user_arguments()
        for mount in self.session_mounts(env):
            mode = "ro" if mount.read_only else "rw"
            args += ["--volume", f"{(self.data_base / mount.local_path).resolve()}:{mount.mount_path}:{mode}"]
        if env.cpu.limit:
            args += ["--cpus", f"{float(env.cpu.limit):g}"]
        if env.memory.limit:
            args += ["--memory", str(int(env.memory.limit))]
        for key, value in sorted(self.container_environment(env).items()):
            args += ["--env", f"{key}={value}"]
        command = [
            "jupyterhub-singleuser",
            f"--ip={self.ip or '127.0.0.1'}",
            f"--port={self.port}",
            f"--ServerApp.root_dir={CONTAINER_HOME}",
            *terminal_arguments("/bin/bash"),
        ]
        if self.default_url:
            command.append(f"--SingleUserNotebookApp.default_url={self.default_url}")
        return [*args, env.image, *command]

    # ---- lifecycle ----
    async def start(self):
        self._reset_progress()
        env = self.chosen_environment or self.resolve_environment(self.user_options or {})
        if self.chosen_environment is None:
            self.apply_environment(env)
        status, _ = await self._docker("image", "inspect", env.image, check=False)
        if status != 0:
            raise DockerError(
                f"the image {env.image} of '{env.title}' is not on this machine's Docker engine; "
                "build it with 'make images'"
            )
        for note in self.gpu_notes(env):
            self.report_progress(5, note)
        self.report_progress(10, f"Preparing the workspace of {self.user.name}")
        copied = self.prepare_workspace()
        if copied:
            self.report_progress(25, f"Copied {copied} example notebook(s) into your workspace")
        # a container of an earlier run that was not removed (the hub was killed) goes first
        await self._docker("rm", "--force", self.name_for_container, check=False)
        self.port = self.port or random_port()
        self.report_progress(40, f"Starting {env.title} ({env.summary()}) in {env.image}")
        await self._docker(*self.run_arguments(env))
        self.container_name = self.name_for_container
        self.report_progress(70, "JupyterLab is starting in its container; waiting for it to answer")
        return (self.ip or "127.0.0.1", self.port)

    async def poll(self):
        """None while the container runs; its exit status (0 when it is gone) otherwise."""
        if not self.container_name:
            return 0
        status, out = await self._docker(
            "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", self.container_name, check=False
        )
        if status != 0:
            return 0
        running, _, code = out.partition(" ")
        return None if running == "true" else int(code or 0)

    async def stop(self, now=False):
        """Stop the container (SIGTERM, then SIGKILL after a grace period unless ``now``) and remove it."""
        if not self.container_name:
            return
        await self._docker("stop", "--time", "0" if now else "10", self.container_name, check=False)
        await self._docker("rm", "--force", self.container_name, check=False)
        self.clear_state()
