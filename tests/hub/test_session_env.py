"""One builder for a session's variables: what the local spawner, BeamSpawner and both job backends get."""

import pytest

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.session_env import (
    THREAD_VARIABLES,
    data_variable,
    local_path,
    session_environment,
    thread_count,
)

CATALOG = load_catalog()
ALICE = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))


def test_every_beamhub_variable_of_a_session():
    tomo = CATALOG.get("tomo")
    env = session_environment(tomo, ALICE, mounts=tomo.mounts, jobs_url="http://hub/services/beamhub-jobs/")
    assert env["BEAMHUB_ENVIRONMENT"] == "tomo" and env["BEAMHUB_ENVIRONMENT_TITLE"] == "Tomography"
    assert env["BEAMHUB_IMAGE"] == tomo.image and env["BEAMHUB_QOS"] == "burstable"
    assert env["CPU_LIMIT"] == "4" and env["MEM_LIMIT"] == str(16 * 2**30)
    assert all(env[name] == "4" for name in THREAD_VARIABLES)
    assert env["BEAMHUB_DATA_RAW_TOMO"] == "/data/raw/tomo" and env["BEAMHUB_DATA_PUBLIC"] == "/data/public"
    assert env["BEAMHUB_BACKEND"] == "numpy"  # the environment's local.env
    assert env["BEAMHUB_JOBS_URL"] == "http://hub/services/beamhub-jobs/"
    assert env["BEAMHUB_USER"] == "alice" and env["BEAMHUB_UID"] == "2001" and env["BEAMHUB_GIDS"] == "3001,3002"
    assert all(isinstance(v, str) for v in env.values())


def test_only_the_mounts_the_caller_gives_and_no_identity_or_url_when_absent():
    tomo = CATALOG.get("tomo")
    env = session_environment(tomo, None, mounts=[m for m in tomo.mounts if m.name == "public"])
    assert "BEAMHUB_DATA_RAW_TOMO" not in env and env["BEAMHUB_DATA_PUBLIC"] == "/data/public"
    assert not {"BEAMHUB_USER", "BEAMHUB_UID", "BEAMHUB_JOBS_URL"} & set(env)


def test_threads_are_shared_among_ranks_and_extra_comes_last():
    emc = CATALOG.get("spi-emc")
    env = session_environment(emc, ALICE, ranks=2, extra={"BEAMHUB_JOB_ID": "emc-1", "OMP_NUM_THREADS": "1"})
    assert env["OPENBLAS_NUM_THREADS"] == "2" and env["OMP_NUM_THREADS"] == "1"
    assert env["BEAMHUB_JOB_ID"] == "emc-1" and env["BEAMHUB_MPI_RANKS"] == "2"
    assert thread_count(emc, ranks=8) == 1 and thread_count(CATALOG.get("scipy")) == 2


@pytest.mark.parametrize("key", ["BEAMHUB_USER", "BEAMHUB_UID", "BEAMHUB_ENVIRONMENT", "BEAMHUB_DATA_PUBLIC"])
def test_a_catalog_entry_cannot_override_identity_or_mounts(key):
    scipy = CATALOG.get("scipy")
    forged = type(scipy)(**{**scipy.__dict__, "local_env": {key: "forged", "OMP_NUM_THREADS": "1"}})
    env = session_environment(forged, ALICE, mounts=scipy.mounts)
    assert env[key] != "forged"
    assert env["OMP_NUM_THREADS"] == "1"  # tuning threads is what local.env is for


def test_data_variable_names():
    assert data_variable(CATALOG.get("tomo").mounts[0]) == "BEAMHUB_DATA_RAW_TOMO"


def test_local_path_puts_the_installation_first_once():
    assert local_path("/v/bin", "/usr/bin:/v/bin:/bin") == "/v/bin:/usr/bin:/bin"
    assert local_path("/v/bin", "") == "/v/bin:/usr/local/bin:/usr/bin:/bin"
