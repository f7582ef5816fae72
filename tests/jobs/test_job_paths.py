"""A local job works in its owner's workspace and reads the data their groups allow; nothing else."""

from __future__ import annotations

import json
import os
import sys

import pytest

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.jobs.local import LocalBackend
from beamhub.hub.jobs.model import JobRequestError, parse_request
from beamhub.hub.jobs.paths import JobRoots, confine
from beamhub.hub.jobs.store import JobStore

ALICE = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))
BOB = Identity("bob", 2002, 2002, (3002,), ("tomo",))


@pytest.fixture
def state(tmp_path):
    for folder in ("users/alice/run", "users/bob", "data/raw/tomo", "data/raw/spi", "data/public"):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def _roots(state, identity=ALICE, env="tomo"):
    backend = LocalBackend(JobStore(state / "jobs"), str(state / "users"), str(state))
    return backend.job_roots(identity.username, identity, load_catalog().get(env))


def _job(kind="tomo", args=("scan.h5", "--out", "recon.h5"), cwd=""):
    return parse_request({"kind": kind, "args": list(args), "cwd": cwd}, "alice")


def test_the_workspace_and_the_groups_data_are_allowed(state):
    roots = _roots(state)
    assert roots.workspace == state / "users" / "alice"
    assert set(roots.read_only) == {state / "data/raw/tomo", state / "data/public"}
    assert confine(_job(), roots) == state / "users" / "alice"  # no cwd: the workspace
    assert confine(_job(cwd=str(state / "users/alice/run")), roots) == state / "users/alice/run"
    raw = state / "data/raw/tomo"
    assert confine(_job(args=("scan.h5", "-o", str(state / "users/alice/r.h5")), cwd=str(raw)), roots) == raw
    # bob is not in spi: its raw data is not his to read
    assert state / "data/raw/spi" not in _roots(state, BOB, "spi-emc").readable


@pytest.mark.parametrize(
    "args, cwd, words",
    [
        (("scan.h5", "--out", "{state}/users/bob/recon.h5"), "", "--out {state}/users/bob/recon.h5 is outside"),
        (("scan.h5", "--out=../bob/r.h5"), "", "--out ../bob/r.h5 is outside your workspace"),
        (("scan.h5", "-o", "r.h5"), "{state}/users/bob", "'cwd' {state}/users/bob is outside"),
        (("scan.h5", "-o", "r.h5"), "/", "'cwd' / is outside"),
        (("scan.h5", "-o", "r.h5"), "{state}/data/raw/tomo", "-o r.h5 is outside"),  # data is read-only
        (("{state}/secrets.json", "-o", "r.h5"), "", "{state}/secrets.json is outside"),
        (("../bob/scan.h5", "-o", "r.h5"), "", "../bob/scan.h5 is outside"),
        (("scan.h5", "-o", "r.h5"), "{state}/users/alice/missing", "is not a folder"),
    ],
)
def test_anything_else_is_refused_with_one_line(state, args, cwd, words):
    job = _job(args=[a.format(state=state) for a in args], cwd=cwd.format(state=state))
    with pytest.raises(JobRequestError) as err:
        confine(job, _roots(state))
    assert words.format(state=state) in str(err.value) and "\n" not in str(err.value)


def test_links_are_followed_before_the_check(state):
    (state / "users/alice/to-bob").symlink_to(state / "users/bob")
    with pytest.raises(JobRequestError, match="--out to-bob/r.h5 is outside"):
        confine(_job(args=("scan.h5", "--out", "to-bob/r.h5")), _roots(state))
    (state / "users/alice/my-data").symlink_to(state / "data/raw/tomo")
    job = _job(args=("scan.h5", "--out", "../../../users/alice/r.h5"), cwd=str(state / "users/alice/my-data"))
    assert confine(job, _roots(state)) == state / "data/raw/tomo"


def test_outputs_named_in_job_files_are_checked(state):
    home = state / "users/alice"
    (home / "job.json").write_text(json.dumps({"out_file": "../bob/phased.h5"}))
    with pytest.raises(JobRequestError, match="'out_file' .*/users/bob/phased.h5 in job.json is outside"):
        confine(_job("phase", ["job.json"]), _roots(state, env="scipy"))
    (home / "ok.json").write_text(json.dumps({"out_file": "run/phased.h5"}))
    confine(_job("phase", ["ok.json"]), _roots(state, env="scipy"))
    (home / "config.ini").write_text("[emc]\noutput_folder = /tmp\nnum_div = 4\n")
    with pytest.raises(JobRequestError, match="'output_folder' /tmp in config.ini"):
        confine(_job("emc", ["config.ini", "-n", "3"]), _roots(state, env="spi-emc"))


def test_a_local_job_gets_the_session_variables_and_nothing_of_the_services(state, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "the-services-admin-token")
    monkeypatch.setenv("OMPI_ALLOW_RUN_AS_ROOT", "1")
    backend = LocalBackend(JobStore(state / "jobs"), str(state / "users"), str(state))
    job = parse_request({"kind": "emc", "args": ["config.ini"], "ranks": 2}, "alice")
    env = backend.environment(job, ALICE, load_catalog().get("spi-emc"))
    # the folder that holds the data on this machine, as in a local session (/data/raw/spi is a pod's path)
    assert env["BEAMHUB_DATA_RAW_SPI"] == str((state / "data" / "raw" / "spi").resolve())
    assert env["BEAMHUB_JOB_ID"] == job.id
    assert env["OMP_NUM_THREADS"] == "2" and env["BEAMHUB_UID"] == "2001"
    assert env["HOME"] == str(state / "users/alice") and env["USER"] == "alice"
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    assert "JUPYTERHUB_API_TOKEN" not in env and "OMPI_ALLOW_RUN_AS_ROOT" not in env


def test_writable_mounts_take_outputs(tmp_path):
    roots = JobRoots(workspace=tmp_path / "home", writable=(tmp_path / "scratch",))
    (tmp_path / "scratch").mkdir()
    confine(_job(args=("scan.h5", "--out", str(tmp_path / "scratch" / "r.h5"))), roots)
