"""Who local sessions and jobs run as, and what the hub (maybe root) does in users' workspaces."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from beamhub.errors import UsageError
from beamhub.hub import isolation
from beamhub.hub import platform as platform_module
from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.isolation import (
    IsolationError,
    command_problem,
    credentials,
    ensure_workspace,
    mode_line,
    unreachable,
)
from beamhub.hub.local import EXAMPLES_MARKER, LocalBeamSpawner, terminal_arguments
from beamhub.hub.platform import DEMO_ACCOUNTS, Platform, PlatformConfig, group_gids

ALICE = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


@pytest.fixture
def open_tmp():
    """A folder every user can pass through (pytest's own tmp_path is under a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="beamhub-isolation-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def isolated(monkeypatch):
    monkeypatch.setattr(isolation, "isolated", lambda: True)


def test_isolated_credentials_are_the_identitys_and_drop_roots_groups(isolated):
    assert credentials(ALICE) == {"user": 2001, "group": 2001, "extra_groups": [3001, 3002], "umask": 0o022}
    lone = Identity("carol", 2005, 2005)
    assert credentials(lone)["extra_groups"] == []  # setgroups([]): none of root's groups kept


@pytest.mark.parametrize(
    "identity, words",
    [
        (None, "never starts user code as root"),
        (Identity("eve", 0, 2000), "root"),
        (Identity("eve", 2000, 2000, (0,)), "root"),
    ],
)
def test_no_identity_or_a_root_one_is_refused(isolated, identity, words):
    with pytest.raises(IsolationError, match=words):
        credentials(identity)


def test_personal_mode_changes_nobody_and_says_so(monkeypatch):
    monkeypatch.setattr(isolation, "isolated", lambda: False)
    assert credentials(None) == {"umask": 0o022}
    monkeypatch.setattr(isolation.os, "geteuid", lambda: 1234)
    assert "personal mode, not isolated" in mode_line() and "uid 1234" in mode_line()


def test_unreachable_names_the_folder_that_stops_other_users(open_tmp):
    private = open_tmp / "private"
    (private / "bin").mkdir(parents=True)
    private.chmod(0o700)
    interpreter = private / "bin" / "python"
    interpreter.write_text("")
    interpreter.chmod(0o755)
    assert unreachable(interpreter) == f"{private} (mode 0700) is not searchable by other users"
    script = open_tmp / "bin" / "jupyterhub-singleuser"
    script.parent.mkdir()
    script.write_text(f"#!{interpreter}\nprint()\n")
    script.chmod(0o755)
    assert unreachable(script) is None
    assert command_problem(script) == unreachable(interpreter)  # the script is reachable, its Python is not
    script.chmod(0o700)
    assert "is not executable by other users" in command_problem(script)
    assert unreachable("/usr/bin/env") is None


def test_platform_refuses_to_start_sessions_it_cannot_isolate(open_tmp, monkeypatch):
    private = open_tmp / "root-only"
    private.mkdir()
    private.chmod(0o700)
    (private / "jupyterhub-singleuser").write_text("#!/bin/sh\n")
    monkeypatch.setattr(platform_module, "SESSION_COMMAND", str(private / "jupyterhub-singleuser"))
    with pytest.raises(UsageError, match="sessions cannot be isolated: the session command"):
        Platform(PlatformConfig(state_dir=Path("/tmp/beamhub-test-state"))).check_isolation()
    monkeypatch.setattr(platform_module, "SESSION_COMMAND", "/usr/bin/env")
    with pytest.raises(UsageError, match="the state folder .* is out of reach"):
        Platform(PlatformConfig(state_dir=private / "state")).check_isolation()


def test_group_gids_from_the_demo_accounts():
    assert group_gids(DEMO_ACCOUNTS) == {"spi": 3001, "tomo": 3002}
    accounts = [
        {"groups": ["xray"], "gids": [5000, 5001]},
        {"groups": ["xray"], "gids": [5001]},
        {"groups": ["xray"], "uid": 0},
    ]  # no gids: reads no group's data either way
    assert group_gids(accounts, preferred={}) == {"xray": 5001}


@as_root
def test_a_workspace_becomes_its_users_without_following_links(tmp_path):
    workspace = tmp_path / "users" / "alice"
    assert ensure_workspace(workspace, ALICE) is True
    info = workspace.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (2001, 2001, 0o700)
    # one made by an earlier run as root is handed over, links themselves and not their targets
    (workspace / "old.ipynb").write_text("{}")
    target = tmp_path / "root-file"
    target.write_text("root's")
    (workspace / "link").symlink_to(target)
    os.chown(workspace, 0, 0)
    assert ensure_workspace(workspace, ALICE) is False
    assert (workspace / "old.ipynb").stat().st_uid == 2001
    assert (workspace / "link").lstat().st_uid == 2001 and target.stat().st_uid == 0


def _spawner(tmp_path, identity=ALICE) -> LocalBeamSpawner:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir(exist_ok=True)
    (notebooks / "00-welcome.ipynb").write_text("{}")
    (tmp_path / "data" / "raw" / "tomo").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "public").mkdir(parents=True, exist_ok=True)
    spawner = LocalBeamSpawner(
        workspace_root=str(tmp_path / "users"), data_root=str(tmp_path), notebooks_dir=str(notebooks)
    )
    spawner.user = SimpleNamespace(name=identity.username, admin=False, groups=[])
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, name="")
    spawner.identity = identity
    spawner.apply_environment(load_catalog().get("tomo"))
    return spawner


def test_first_start_copies_examples_once_and_links_the_data(tmp_path):
    spawner = _spawner(tmp_path)
    assert spawner.prepare_workspace() == 1
    workspace = tmp_path / "users" / "alice"
    assert (workspace / EXAMPLES_MARKER).exists()
    assert os.readlink(workspace / "data" / "raw-tomo") == str(tmp_path / "data" / "raw" / "tomo")
    (workspace / "00-welcome.ipynb").unlink()  # deleted by the user: stays deleted
    assert spawner.prepare_workspace() == 0 and not (workspace / "00-welcome.ipynb").exists()
    if os.geteuid() == 0:
        assert (workspace / "data").stat().st_uid == 2001
        assert (workspace / "data" / "raw-tomo").lstat().st_uid == 2001


def test_a_data_folder_swapped_for_a_link_does_not_steer_the_hub(tmp_path):
    spawner = _spawner(tmp_path)
    workspace = tmp_path / "users" / "alice"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "raw-tomo").write_text("someone else's file")
    workspace.mkdir(parents=True)
    (workspace / "data").symlink_to(elsewhere)
    spawner.prepare_workspace()
    assert (elsewhere / "raw-tomo").read_text() == "someone else's file"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["raw-tomo"]


def test_session_environment_path_and_terminal(tmp_path):
    spawner = _spawner(tmp_path)
    env = spawner._session_env
    # a local session's data variables name the folders that hold the data here, not a pod's /data/...
    assert env["BEAMHUB_DATA_RAW_TOMO"] == str((tmp_path / "data" / "raw" / "tomo").resolve())
    assert env["BEAMHUB_DATA_PUBLIC"] == str((tmp_path / "data" / "public").resolve())
    assert env["BEAMHUB_USER"] == "alice"
    assert "--allow-root" not in spawner.args
    assert terminal_arguments("/bin/bash")[0] in spawner.args
    assert terminal_arguments("/bin/bash") == ['--ServerApp.terminado_settings=shell_command=["/bin/bash"]']
