"""Job requests are checked field by field; Job manifests are pure builders, tested without a cluster."""

import subprocess
import sys

import pytest

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.jobs.manifests import job_objects
from beamhub.hub.jobs.model import JobRequestError, parse_request
from beamhub.hub.pods import ClusterSettings

CATALOG = load_catalog()
ALICE = Identity("alice", 2001, 2001, (3001,), ("spi", "tomo"))
BOB = Identity("bob", 2002, 2002, (3002,), ("tomo",))
SETTINGS = ClusterSettings(
    data_volumes={
        "raw-spi": {"nfs": {"server": "nfs", "path": "/raw/spi"}},
        "raw-tomo": {"nfs": {"server": "nfs", "path": "/raw/tomo"}},
    }
)


@pytest.mark.parametrize(
    "body, words",
    [
        ([], "JSON object"),
        ({"kind": "rm"}, "'kind'"),
        ({"kind": "phase", "args": "job.json"}, "'args'"),
        ({"kind": "phase", "args": [1]}, "'args'"),
        ({"kind": "phase", "cwd": "relative"}, "'cwd'"),
        ({"kind": "emc", "ranks": 0}, "'ranks'"),
        ({"kind": "emc", "ranks": True}, "'ranks'"),
        ({"kind": "phase", "ranks": 4}, "only emc"),
        ({"kind": "phase", "image": "evil"}, "unknown field"),
    ],
)
def test_bad_requests_name_the_field(body, words):
    with pytest.raises(JobRequestError, match=words):
        parse_request(body, "alice")


def test_good_request():
    job = parse_request(
        {"kind": "emc", "args": ["config.ini"], "cwd": "/home/jovyan", "ranks": 4, "environment": "spi-emc"}, "alice"
    )
    assert job.owner == "alice" and job.ranks == 4 and job.id.startswith("emc-")
    assert job.command == ["beamhub", "emc", "config.ini"]


def _job(kind, ranks=1, environment="spi-emc", owner="alice"):
    return parse_request(
        {"kind": kind, "args": ["in.cfg"], "cwd": "/home/jovyan/run", "ranks": ranks, "environment": environment}, owner
    )


def test_single_pod_job_runs_as_the_user_with_the_session_mounts():
    job = _job("phase", environment="phasing-gpu")
    policy, obj = job_objects(job, CATALOG.get("phasing-gpu"), ALICE, SETTINGS, "beamhub")
    assert policy["kind"] == "NetworkPolicy"
    assert obj["kind"] == "Job" and obj["metadata"]["name"] == job.id
    assert obj["metadata"]["labels"]["beamhub.io/owner"] == "alice"
    spec = obj["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["image"] == "ghcr.io/beamhub/gpu:0.1.0"
    assert container["command"] == ["beamhub", "phase", "in.cfg"]
    assert container["workingDir"] == "/home/jovyan/run"
    assert spec["securityContext"]["runAsUser"] == 2001 and spec["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never" and obj["spec"]["backoffLimit"] == 0
    assert {"mountPath": "/data/raw/spi", "name": "data-raw-spi", "readOnly": True} in container["volumeMounts"]


@pytest.mark.parametrize("ranks", [1, 4])
def test_emc_over_ranks_is_an_indexed_job_with_a_headless_service(ranks):
    job = _job("emc", ranks=ranks)
    objects = job_objects(job, CATALOG.get("spi-emc"), ALICE, SETTINGS, "beamhub")
    if ranks == 1:
        assert [o["kind"] for o in objects] == ["NetworkPolicy", "Job"]
        return
    policy, service, indexed = objects
    # the job's pods reach each other and DNS only; only the job's own pods reach them
    assert policy["spec"]["podSelector"]["matchLabels"] == {"beamhub.io/job-id": job.id}
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"beamhub.io/job-id": job.id}}}]}]
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])} == {53}
    assert service["kind"] == "Service" and service["spec"]["clusterIP"] == "None"
    assert indexed["spec"]["completionMode"] == "Indexed"
    assert indexed["spec"]["completions"] == indexed["spec"]["parallelism"] == 4
    spec = indexed["spec"]["template"]["spec"]
    assert spec["subdomain"] == job.id == service["metadata"]["name"]
    script = spec["containers"][0]["command"][-1]
    assert "mpiexec" in script and f"-n 4 --host {job.id}-0.{job.id}," in script and "beamhub emc in.cfg" in script
    # the environment's 4 CPUs are shared by the 4 ranks
    assert spec["containers"][0]["resources"]["limits"]["cpu"] == "1"


def test_emc_as_mpijob_where_the_operator_is_installed():
    job = _job("emc", ranks=2)
    _policy, mpijob = job_objects(job, CATALOG.get("spi-emc"), ALICE, SETTINGS, "beamhub", mpi_operator=True)
    assert mpijob["apiVersion"] == "kubeflow.org/v2beta1" and mpijob["kind"] == "MPIJob"
    replicas = mpijob["spec"]["mpiReplicaSpecs"]
    assert replicas["Worker"]["replicas"] == 2
    assert replicas["Launcher"]["template"]["spec"]["containers"][0]["command"][:3] == ["mpirun", "-n", "2"]


def test_other_claims_give_other_pods():
    job = _job("tomo", environment="tomo", owner="bob")
    _policy, obj = job_objects(job, CATALOG.get("tomo"), BOB, SETTINGS, "beamhub")
    spec = obj["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == 2002
    assert spec["securityContext"]["supplementalGroups"] == [3002]


def test_job_code_never_imports_kubespawner():
    """The pure pod builder serves the jobs; KubeSpawner stays the session spawner's business."""
    code = (
        "import sys, beamhub.hub.jobs.manifests, beamhub.hub.jobs.kube, beamhub.hub.jobs.service; "
        "print('kubespawner' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    "argv, ranks, args",
    [
        (["emc", "config.ini", "--ranks", "4", "--", "--iterations", "30"], 4, ["config.ini", "--iterations", "30"]),
        (["emc", "--ranks", "4", "--environment", "spi-emc", "emc.ini"], 4, ["emc.ini"]),
        (
            ["tomo", "scan.h5", "--out", "recon.h5", "--center", "auto"],
            1,
            ["scan.h5", "--out", "recon.h5", "--center", "auto"],
        ),
    ],
)
def test_submit_reads_its_own_options_anywhere_before_the_double_dash(argv, ranks, args):
    """README's `beamhub submit emc config.ini --ranks 4 -- --iterations 30` used to submit 1 rank."""
    import argparse

    from beamhub.hub.commands.jobs import _split_submit

    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--environment", default="")
    parser.add_argument("args", nargs="*")
    known, job_args = _split_submit(parser, argv)
    assert (known.ranks, job_args) == (ranks, args)


def test_job_pods_and_session_pods_share_one_environment_builder():
    """hub/session_env.py builds both: same identity, data mounts and limits; threads split over ranks."""
    from beamhub.hub.pods import environment_overrides

    env = CATALOG.get("spi-emc")
    session = environment_overrides(env, ALICE, SETTINGS)["environment"]
    _policy, _service, indexed = job_objects(_job("emc", ranks=4), env, ALICE, SETTINGS, "beamhub")
    job_env = {e["name"]: e["value"] for e in indexed["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in (
        "BEAMHUB_USER",
        "BEAMHUB_UID",
        "BEAMHUB_GIDS",
        "BEAMHUB_DATA_RAW_SPI",
        "BEAMHUB_ENVIRONMENT",
        "MEM_LIMIT",
        "CPU_LIMIT",
    ):
        assert job_env[name] == session[name], name
    assert session["OMP_NUM_THREADS"] == str(int(env.cpu.limit))
    assert job_env["OMP_NUM_THREADS"] == str(max(1, int(env.cpu.limit) // 4))


def test_tomo_runs_over_mpi_ranks_like_emc_and_phase_does_not():
    """`beamhub submit tomo scan.h5 --ranks 4`: slabs split over ranks, an Indexed Job on Kubernetes."""
    job = parse_request({"kind": "tomo", "args": ["scan.h5", "--out", "r.h5"], "ranks": 4}, "bob")
    _policy, service, indexed = job_objects(job, CATALOG.get("tomo"), BOB, SETTINGS, "beamhub")
    assert indexed["spec"]["completions"] == 4 and service["spec"]["clusterIP"] == "None"
    assert "beamhub tomo scan.h5 --out r.h5" in indexed["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    with pytest.raises(JobRequestError, match="only emc and tomo jobs"):
        parse_request({"kind": "phase", "args": ["job.json"], "ranks": 2}, "bob")
