"""LocalBeamSpawner: the environment catalog on local processes — BeamHub's embedded default.

Each user gets a working directory (``workspace_root/<name>``, also their HOME) with the
example notebooks copied in on first start; the chosen environment's settings are applied
(the variables of :func:`~beamhub.hub.session_env.session_environment`: identity, data
mounts, thread counts from the CPU limit, the environment's ``local.env``; a memory limit
through RLIMIT_DATA where the OS allows); ``data/<mount>`` links point at the local data
folders the user's groups may read.

Who the session runs as is :mod:`beamhub.hub.isolation`'s decision: when the hub runs as
root, as the uid, gid and supplementary gids of the SSO claims (the users need not exist in
``/etc/passwd``), like JupyterHub's LocalProcessSpawner runs each user as their UNIX account,
and the workspace is theirs alone (0700); otherwise as the hub's own user (personal mode).
The hub never starts a session as root.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Unicode, default

from beamhub.hub.catalog import Environment, Mount
from beamhub.hub.gpus import count_local_gpus
from beamhub.hub.isolation import (
    IsolationError,
    command_problem,
    credentials,
    ensure_workspace,
    isolated,
    process_environment,
    session_shell,
)
from beamhub.hub.menu import EnvironmentMenuMixin
from beamhub.hub.session_env import BIN_DIR, local_path, on_this_machine, session_environment

#: In a workspace once the example notebooks were copied in (the Kubernetes sessions use the same name).
EXAMPLES_MARKER = ".beamhub-examples"
#: In a workspace once the kernel documentation was copied in (its own marker, so workspaces made
#: before the docs were shipped get them on their next start).
DOCS_MARKER = ".beamhub-docs"
#: The kernel documentation a session gets in ``docs/`` beside the notebooks, which link to it
#: (relative to the checkout's docs/; the session images copy the same files, images/*/Dockerfile).
KERNEL_DOCS = ("tomo.md", "emc.md", "phasing.md", "view.md", "figures/tomo_geometry.png")
#: The single-user server of the Python running the hub, whatever PATH says.
SESSION_COMMAND = str(Path(sys.executable).with_name("jupyterhub-singleuser"))


def _repo_notebooks() -> str:
    """The notebooks/ folder of this checkout (editable install), if there is one."""
    candidate = Path(__file__).resolve().parent.parent / "notebooks"
    return str(candidate) if candidate.is_dir() else ""


def _repo_docs() -> str:
    """The docs/ folder of this checkout (editable install), if there is one."""
    candidate = Path(__file__).resolve().parent.parent / "docs"
    return str(candidate) if candidate.is_dir() else ""


def terminal_arguments(shell: str) -> list[str]:
    """Single-user server arguments that make JupyterLab's terminals keep the session's PATH.

    jupyter_server_terminals starts a *login* shell (``bash -l``) when the server has no
    terminal of its own, as under a spawner; a login shell reads /etc/profile, which sets PATH
    afresh, so ``beamhub`` and ``python`` of the session's environment were "command not
    found".  Naming the shell explicitly makes it an interactive non-login shell: it reads
    /etc/bash.bashrc and the user's own ~/.bashrc, and keeps the PATH the spawner gave the
    session (the venv's bin first).  Chosen over writing a ~/.profile into users' workspaces,
    which would be ours to keep in step with whatever the user puts there.
    """
    return [f"--ServerApp.terminado_settings=shell_command={json.dumps([shell])}"]


def _open_folder(parent_fd: int, name: str, identity) -> int:
    """A descriptor of folder ``name`` in ``parent_fd``, created (and given to the user) if absent.

    O_NOFOLLOW: a user who swaps the folder for a link to somewhere else (another workspace,
    /etc) makes this fail instead of the root hub writing there.
    """
    try:
        os.mkdir(name, 0o755, dir_fd=parent_fd)
        if isolated() and identity is not None:
            os.chown(name, identity.uid, identity.gid, dir_fd=parent_fd, follow_symlinks=False)
    except FileExistsError:
        pass
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)


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
    docs_dir = Unicode(
        config=True,
        help="Folder holding the kernel documentation (KERNEL_DOCS), copied into a user's working "
        "directory as docs/ on first start; the example notebooks link to it. Empty: none.",
    )
    apply_memory_limit = Bool(
        True,
        config=True,
        help="Apply the environment's memory limit to the session as RLIMIT_DATA (Linux).",
    )

    @default("local_gpus")
    def _local_gpus_default(self):
        return count_local_gpus()

    @default("notebooks_dir")
    def _notebooks_dir_default(self):
        return _repo_notebooks()

    @default("docs_dir")
    def _docs_dir_default(self):
        return _repo_docs()

    @default("workspace_root")
    def _workspace_root_default(self):
        return os.path.abspath("beamhub-users")

    @default("cmd")
    def _cmd_default(self):
        return [SESSION_COMMAND]

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
    @property
    def data_base(self) -> Path:
        """The folder catalog mounts' ``local_path`` values are relative to."""
        return Path(self.data_root) if self.data_root else Path(self.workspace_root).parent

    def session_mounts(self, env: Environment) -> list[Mount]:
        """The catalog mounts this session gets: its groups allow them and their local folder exists."""
        groups = self.user_groups()
        return [
            m for m in env.mounts if m.local_path and m.allowed_for(groups) and (self.data_base / m.local_path).is_dir()
        ]

    def local_mounts(self, env: Environment) -> list[Mount]:
        """:meth:`session_mounts` with each ``mount_path`` replaced by the folder that holds the data here.

        A local session has no ``/data/raw/tomo``: the catalog's ``mount_path`` is where a pod
        sees the volume.  ``BEAMHUB_DATA_<NAME>`` must name a folder that exists, or the README's
        ``beamhub submit tomo $BEAMHUB_DATA_RAW_TOMO/...`` fails on day one; the real folder
        (not the workspace's ``data/<mount>`` link) is what the jobs service checks inputs against.
        """
        return on_this_machine(self.session_mounts(env), self.data_base)

    def apply_environment(self, env: Environment) -> None:
        """Environment variables, arguments and notebook folder for ``env``; limits go in preexec."""
        self.notebook_dir = str(self.workspace)
        self.args = [*env.local_args, *terminal_arguments(session_shell())]
        self.chosen_environment = env
        self._session_env = session_environment(
            env, self.identity, mounts=self.local_mounts(env), jobs_url=self.jobs_url
        )

    def get_env(self):
        env = super().get_env()
        env.update(getattr(self, "_session_env", {}))
        env["PATH"] = local_path(BIN_DIR, env.get("PATH"))
        return env

    def user_env(self, env):
        """USER, HOME (the working directory) and SHELL: users need not exist in this machine's passwd."""
        env.update(process_environment(self.identity, self.workspace, self.user.name))
        return env

    def make_preexec_fn(self, name):
        """chdir and memory limit, in the child after it became the user (Popen's user/group/extra_groups)."""
        memory = (
            int(self.chosen_environment.memory.limit) if (self.chosen_environment and self.apply_memory_limit) else 0
        )
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

        The hub may be root here and the workspace is the user's: every write goes through
        descriptors opened without following links, and new files are created exclusively, so
        nothing a user placed in their workspace can make the hub write elsewhere.
        The kernel documentation goes into ``docs/`` beside the notebooks, once, under its own
        marker.  Returns the number of notebooks copied (0 after the first start).
        """
        workspace = self.workspace
        identity = self.identity
        ensure_workspace(workspace, identity)
        fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            copied = 0
            # a marker, not "the folder is new": a batch job may have made the workspace first
            if self.notebooks_dir and Path(self.notebooks_dir).is_dir() and EXAMPLES_MARKER not in os.listdir(fd):
                for source in sorted(Path(self.notebooks_dir).glob("*.ipynb")):
                    copied += self._copy_new(source, fd, identity)
                self._copy_new(None, fd, identity, name=EXAMPLES_MARKER)
            if self.docs_dir and Path(self.docs_dir).is_dir() and DOCS_MARKER not in os.listdir(fd):
                self._copy_docs(fd, identity)
                self._copy_new(None, fd, identity, name=DOCS_MARKER)
            self._link_data(fd, identity)
        finally:
            os.close(fd)
        return copied

    def _copy_docs(self, workspace_fd: int, identity) -> None:
        """KERNEL_DOCS into ``docs/`` (and its sub-folders), new files only, owned by the user."""
        folders = {"": _open_folder(workspace_fd, "docs", identity)}
        try:
            for relative in KERNEL_DOCS:
                source = Path(self.docs_dir) / relative
                if not source.is_file():
                    continue  # a trimmed install: copy what there is
                parent = Path(relative).parent.as_posix()
                parent = "" if parent == "." else parent  # one level of sub-folders (figures/)
                if parent not in folders:
                    folders[parent] = _open_folder(folders[""], parent, identity)
                self._copy_new(source, folders[parent], identity)
        finally:
            for folder in folders.values():
                os.close(folder)

    @staticmethod
    def _copy_new(source: Path | None, folder_fd: int, identity, name: str = "") -> int:
        """Copy ``source`` (None: an empty file ``name``) into the folder as a new file owned by the user.

        Returns 1, or 0 when the name is taken (what the user has is kept).
        """
        try:
            out = os.open(
                name or source.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder_fd
            )
        except FileExistsError:
            return 0
        with open(out, "wb") as dest:
            if isolated() and identity is not None:
                os.fchown(dest.fileno(), identity.uid, identity.gid)
            if source is not None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, dest)
        return 1

    def _link_data(self, workspace_fd: int, identity) -> None:
        """data/<mount> links to the environment's local data folders the user's groups may read."""
        if not self.chosen_environment:
            return
        sources = {
            m.name: (self.data_base / m.local_path).resolve() for m in self.session_mounts(self.chosen_environment)
        }
        if not sources:
            return
        try:
            data_fd = _open_folder(workspace_fd, "data", identity)
        except OSError as exc:  # the user replaced data/ by a file or a link: leave it alone
            self.log.warning(
                "Not linking data for %s: %s/data is not a folder (%s)", self.user.name, self.workspace, exc.strerror
            )
            return
        try:
            for name, source in sources.items():
                try:
                    current = os.readlink(name, dir_fd=data_fd)
                except FileNotFoundError:
                    current = None
                except OSError:
                    continue  # a real file or folder of the user's with that name: theirs, kept
                if current == str(source):
                    continue
                if current is not None:
                    os.unlink(name, dir_fd=data_fd)
                os.symlink(source, name, target_is_directory=True, dir_fd=data_fd)
                if isolated() and identity is not None:
                    os.chown(name, identity.uid, identity.gid, dir_fd=data_fd, follow_symlinks=False)
        finally:
            os.close(data_fd)

    async def start(self):
        self._reset_progress()
        env = self.chosen_environment or self.resolve_environment(self.user_options or {})
        if self.chosen_environment is None:
            self.apply_environment(env)
        if isolated():
            problem = command_problem(self.cmd[0])
            if problem:
                raise IsolationError(f"cannot start a session as {self.user.name}'s own uid: {problem}")
        # who the session runs as: Popen switches user, group and supplementary groups in the child
        self.popen_kwargs = {**self.popen_kwargs, **credentials(self.identity)}
        for note in self.gpu_notes(env):  # first, before anything else the user reads
            self.report_progress(5, note)
        self.report_progress(10, f"Preparing the workspace of {self.user.name}")
        copied = self.prepare_workspace()
        if copied:
            self.report_progress(25, f"Copied {copied} example notebook(s) into your workspace")
        self.report_progress(40, f"Starting {env.title} ({env.summary()})")
        url = await super().start()
        self.report_progress(70, "JupyterLab is starting; waiting for it to answer")
        return url
