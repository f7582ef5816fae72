"""Each image, run as the SSO identity a pod would have: uid 2001, gid 2001, supplementary group
3001, a read-only root filesystem with /tmp and the home on tmpfs, the host network.

Session images start a real jupyterhub-singleuser that checks in with the real hub of the test
platform (the `platform` fixture) and answers /api; the tomo image reconstructs a simulated scan
with `beamhub tomo`; the spi image runs EMC over two MPI ranks; nothing runs as root.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from beamhub.hub.catalog import load_catalog
from beamhub.hub.platform import free_port

REPO = Path(__file__).resolve().parents[2]
REGISTRY, TAG = "ghcr.io/beamhub", "0.1.0"
NAMES = ["hub", "base", "gpu", "tomo", "spi"]
SESSION_IMAGES = ["base", "gpu", "tomo", "spi"]
AS_ALICE = [
    "--network",
    "host",
    "--user",
    "2001:2001",
    "--group-add",
    "3001",
    "--read-only",
    "--tmpfs",
    "/tmp:exec",
    "--tmpfs",
    "/home/jovyan:mode=1777,exec",
]


def image(name: str) -> str:
    return f"{REGISTRY}/{name}:{TAG}"


def docker(engine, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([engine.docker, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"docker {' '.join(args[:4])} ...: {done.stdout[-1500:]}\n{done.stderr[-1500:]}"
    return done


def run_as_alice(engine, name: str, script: str, timeout: float = 600, check: bool = True):
    return docker(
        engine,
        "run",
        "--rm",
        *AS_ALICE,
        "-w",
        "/tmp",
        "--entrypoint",
        "sh",
        image(name),
        "-c",
        script,
        timeout=timeout,
        check=check,
    )


def test_every_catalog_image_is_built_here(engine):
    refs = {env.image for env in load_catalog().environments}
    assert refs <= {image(n) for n in NAMES}, refs
    for ref in refs | {image("hub")}:
        docker(engine, "image", "inspect", ref)


@pytest.mark.parametrize("name", NAMES)
def test_no_image_runs_as_root(engine, name):
    config = json.loads(docker(engine, "image", "inspect", image(name)).stdout)[0]["Config"]
    assert config["User"] not in ("", "0", "root", "0:0"), f"{name} runs as {config['User']!r}"
    uid = docker(engine, "run", "--rm", "--network", "host", "--entrypoint", "id", image(name), "-u").stdout.strip()
    assert uid != "0"


@pytest.mark.parametrize("name", SESSION_IMAGES)
def test_session_image_serves_as_the_user_and_imports_the_kernels(engine, platform, name):
    port = free_port()
    hub_api = f"http://127.0.0.1:{platform.config.hub_port}/hub/api"
    env = {
        "JUPYTERHUB_API_TOKEN": "smoke-test",
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
        "JUPYTERHUB_API_URL": hub_api,
        "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}/user/alice/",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/alice/oauth_callback",
    }
    flags = [item for key, value in env.items() for item in ("-e", f"{key}={value}")]
    container = docker(
        engine, "run", "-d", *AS_ALICE, *flags, image(name), "jupyterhub-singleuser", "--ip=127.0.0.1", f"--port={port}"
    ).stdout.strip()
    try:
        answer, deadline = None, time.monotonic() + 120
        while time.monotonic() < deadline and answer is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/user/alice/api", timeout=3) as resp:
                    answer = json.load(resp)
            except OSError:
                time.sleep(1)
        logs = docker(engine, "logs", container).stderr
        assert answer and "version" in answer, f"{name}: jupyterhub-singleuser did not answer /api:\n{logs[-3000:]}"
        who = docker(
            engine,
            "exec",
            container,
            "sh",
            "-c",
            "id -u; id -G; python -c 'import beamhub.kernels, h5py, numpy; print(\"kernels ok\")'",
        ).stdout
        uid, groups, kernels = who.split("\n")[:3]
        assert uid == "2001" and "3001" in groups.split() and kernels == "kernels ok"
        if name == "gpu":  # no GPU here: the image says so in one line at start, and runs on numpy
            assert "beamhub backend: numpy on the CPU (cupy 14.2.0 is installed but sees no CUDA device" in logs
    finally:
        docker(engine, "rm", "-f", container, check=False)


def test_tomo_image_reconstructs_a_simulated_scan(engine):
    script = """set -e
python - <<'PY'
from beamhub.kernels.sim.tomo import simulate_scan
from beamhub.kernels.io.dxchange import write_dx
scan = simulate_scan(n=64, rows=2, n_angles=90, center_offset=1.5, seed=1)
write_dx("scan.h5", scan.tomo, scan.flat, scan.dark, scan.theta)
PY
beamhub tomo scan.h5 --out recon.h5 --center auto --quiet
python -c "import h5py; d = h5py.File('recon.h5')['exchange/data']; print('recon', d.shape)"
python -c "from beamhub.kernels.tomo import recon; import numpy as np; recon(np.ones((4, 1, 8)), np.linspace(0, 3, 4), backend='tomopy')" 2>&1 | tail -1
"""
    out = run_as_alice(engine, "tomo", script).stdout
    assert "recon (2, 64, 64)" in out, out
    label = json.loads(docker(engine, "image", "inspect", image("tomo")).stdout)[0]["Config"]["Labels"]
    if label["org.beamhub.tomopy"].startswith("absent"):  # built without conda-forge: one line says why
        assert "needs tomopy" in out.splitlines()[-1], out


def test_spi_image_runs_emc_over_two_mpi_ranks(engine):
    script = """set -e
beamhub simulate spi case --num-data 200 --detsize 15 --num-div 3 --seed 2 > /dev/null
mpiexec -n 2 --oversubscribe beamhub emc case/config.ini --iterations 2 --quiet
ls case/data/output_002.h5 && tail -n 2 case/EMC.log
"""
    out = run_as_alice(engine, "spi", script, timeout=900).stdout
    assert "output_002.h5" in out, out


def test_hub_image_has_jupyterhub_beamhub_and_the_extender(engine):
    script = """set -e
jupyterhub --version
python -c 'import kubespawner, oauthenticator; from beamhub.hub.k8sconfig import configure; from beamhub.hub.spawner import BeamSpawner; print("hub ok")'
beamhub scheduler --help | head -n 1
"""
    out = run_as_alice(engine, "hub", script).stdout
    pinned = re.search(r"^jupyterhub==(\S+)", (REPO / "images" / "hub" / "requirements.txt").read_text(), re.M).group(1)
    assert out.splitlines()[0] == pinned and "hub ok" in out and "usage: beamhub scheduler" in out
