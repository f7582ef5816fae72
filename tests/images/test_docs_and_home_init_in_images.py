"""What issue 17's docs and home-init items put into the real images, run as a user would.

* Each session image carries the kernel documentation (hub/local.py KERNEL_DOCS) beside its example
  notebooks, byte for byte the checkout's, and a user's postStart copy of that folder into an
  empty home gives ``docs/`` beside the notebooks, as the notebooks' links expect.
* The chart's home-init script (deploy/helm/beamhub/files/home-init.sh, rendered into the init
  container) runs in its default image, as uid 2001 with a read-only root: it makes the user's
  folder in a 1733 top folder, and explains itself where users cannot create folders.
"""

from __future__ import annotations

import hashlib

import pytest
from test_built_images import REPO, SESSION_IMAGES, docker, image, run_as_alice

from beamhub.hub.local import KERNEL_DOCS

HOME_INIT = (REPO / "deploy" / "helm" / "beamhub" / "files" / "home-init.sh").read_text()


@pytest.mark.parametrize("name", SESSION_IMAGES)
def test_session_image_carries_the_kernel_docs_beside_the_notebooks(engine, name):
    listing = run_as_alice(engine, name, "cd /opt/beamhub-notebooks/docs && sha256sum " + " ".join(KERNEL_DOCS))
    sums = dict(line.split()[::-1] for line in listing.stdout.splitlines())
    for doc in KERNEL_DOCS:
        assert sums[doc] == hashlib.sha256((REPO / "docs" / doc).read_bytes()).hexdigest(), f"{name}: {doc}"
    # copied into an empty home as a first start would, the notebooks' relative links resolve
    copied = run_as_alice(
        engine,
        name,
        'cp -n /opt/beamhub-notebooks/*.ipynb "$HOME"/ && '
        'cp -Rn /opt/beamhub-notebooks/docs "$HOME"/ && cd "$HOME" && ls docs/tomo.md '
        "docs/figures/tomo_geometry.png tomography.ipynb",
    )
    assert "docs/tomo.md" in copied.stdout


def test_home_init_script_makes_the_users_folder_in_the_base_image(engine):
    ready = docker(
        engine,
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "2001:2001",
        "--read-only",
        "--tmpfs",
        "/beamhub-home-root:mode=1733",
        "--entrypoint",
        "/bin/sh",
        image("base"),
        "-c",
        HOME_INIT + '\nls -ldn "$path"',
        "home-init",
        "alice",
    )
    assert "home-init: /beamhub-home-root/alice is ready for uid 2001" in ready.stdout
    assert ready.stdout.splitlines()[-1].startswith("drwx------ 2 2001 2001")
    refused = docker(
        engine,
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "2001:2001",
        "--read-only",
        "--tmpfs",
        "/beamhub-home-root:mode=0755",
        "--entrypoint",
        "/bin/sh",
        image("base"),
        "-c",
        HOME_INIT,
        "home-init",
        "alice",
        check=False,
    )
    assert refused.returncode == 1 and "chmod 1733" in refused.stderr
