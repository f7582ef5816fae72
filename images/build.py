"""Build BeamHub's images with a real Docker engine: ``make images`` (``python images/build.py``).

1. A Docker engine: the running one, or Debian's ``dockerd`` started here (as root; no bridge,
   no iptables: builds and smoke tests use the host network) and stopped again at the end.
2. A base: each Dockerfile takes ``BASE`` as a build argument whose default is the pinned public
   tag a site uses (``python:3.12.8-slim-bookworm``). Where that tag cannot be pulled (no
   registry reachable), the base is made locally once: a Debian trixie root filesystem from
   ``debootstrap`` with Python 3 and venv, turned into an image by ``docker import``
   (``beamhub/debian-python:trixie``). Only a fallback: sites build on the public tag.
3. The shared stages (``images/common/Dockerfile``), built first on that base as four local
   images: ``beamhub/build-base``, ``beamhub/project``, ``beamhub/runtime-base`` and
   ``beamhub/session-base`` (tag ``0.1.0``), so a stanza the images share is written once.
4. The images ``hub``, ``base``, ``gpu``, ``tomo``, ``spi`` from the repository, on those shared
   images (each Dockerfile's build arguments ``BUILD_BASE``, ``PROJECT``, ``RUNTIME_BASE``,
   ``SESSION_BASE``, whose defaults are the tags above), with BuildKit: the host network, a pip
   cache shared between builds, and — where this machine trusts its network through extra CA
   certificates — those certificates handed to the build as a build secret (never written into
   an image). The tomo image uses conda-forge for tomopy where it is reachable and is built
   without tomopy (labelled so) where it is not.

Builds are cached by Docker, so a second run takes seconds. One line per image; on a failure
the tail of its log and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from beamhub.atomic import write_atomic

REPO = Path(__file__).resolve().parents[1]
IMAGES = ("hub", "base", "gpu", "tomo", "spi")
TAG = "0.1.0"
REGISTRY = "ghcr.io/beamhub"
PINNED_BASE = "python:3.12.8-slim-bookworm"
LOCAL_BASE = "beamhub/debian-python:trixie"
#: the shared stages of images/common/Dockerfile, in build order: target -> (build argument that
#: names it in the images' Dockerfiles, local tag). Built first, on the same BASE as everything.
COMMON = {
    "build-base": ("BUILD_BASE", f"beamhub/build-base:{TAG}"),
    "project": ("PROJECT", f"beamhub/project:{TAG}"),
    "runtime-base": ("RUNTIME_BASE", f"beamhub/runtime-base:{TAG}"),
    "session-base": ("SESSION_BASE", f"beamhub/session-base:{TAG}"),
}
CA_BUNDLE = Path(os.environ.get("BEAMHUB_BUILD_CA", "/etc/ssl/certs/ca-certificates.crt"))
CONDA_FORGE = "https://conda.anaconda.org/conda-forge/noarch/repodata.json"
LOG_DIR = REPO / "state" / "images"
#: BuildKit's cache is kept to this size (GB) after a build: each change to BeamHub's code makes
#: new multi-GB venv layers, and without a bound a few dozen rebuilds fill a disk
CACHE_GB = int(os.environ.get("BEAMHUB_BUILD_CACHE_GB", "20"))
#: on every image built here, so the images a rebuild replaced (untagged) can be removed, and only those
PROJECT_LABEL = "org.beamhub.project=beamhub"


class BuildError(RuntimeError):
    """One line a person can act on."""


def say(message: str) -> None:
    print(f"make images: {message}", flush=True)


def docker_cli() -> str:
    """A docker client that builds with BuildKit secrets: Debian's (20.10 has BuildKit built in) or buildx."""
    for candidate in ("/usr/bin/docker", shutil.which("docker") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BuildError("no docker client: install Debian's docker.io (apt-get install docker.io)")


def run(
    args: list[str],
    *,
    log: Path | None = None,
    timeout: float | None = None,
    env: dict | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess:
    if log is not None:
        with open(log, "ab") as out:
            return subprocess.run(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env={**os.environ, **(env or {})},
                input=input,
            )
    return subprocess.run(args, capture_output=True, timeout=timeout, env={**os.environ, **(env or {})}, input=input)


class Engine:
    """The Docker engine: found running, or started here (and then stopped by :meth:`stop`)."""

    def __init__(self, docker: str):
        self.docker = docker
        self.proc: subprocess.Popen | None = None

    def answering(self) -> bool:
        try:
            return run([self.docker, "info"], timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start(self) -> None:
        if self.answering():
            return
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.access(dockerd, os.X_OK):
            raise BuildError("no Docker engine is running and dockerd is not installed (apt-get install docker.io)")
        if os.geteuid() != 0:
            raise BuildError(
                "no Docker engine is running; start one (sudo systemctl start docker) or run make images as root"
            )
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(LOG_DIR / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            [dockerd, "--iptables=false", "--ip-masq=false", "--bridge=none"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BuildError(f"dockerd exited with status {self.proc.returncode}; see {LOG_DIR / 'dockerd.log'}")
            if self.answering():
                say("started Debian's dockerd (it is stopped again at the end)")
                return
            time.sleep(0.5)
        raise BuildError(f"dockerd did not answer within 60 s; see {LOG_DIR / 'dockerd.log'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def has_image(self, ref: str) -> bool:
        return run([self.docker, "image", "inspect", ref], timeout=30).returncode == 0

    def pull(self, ref: str) -> bool:
        try:
            return run([self.docker, "pull", ref], timeout=120).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        for line in sources.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["deb"] and "security" not in line:
                return next(p for p in parts[1:] if p.startswith("http"))
    return "http://deb.debian.org/debian"


def local_base(engine: Engine) -> str:
    """``beamhub/debian-python:trixie`` from debootstrap + docker import, made once."""
    if engine.has_image(LOCAL_BASE):
        return LOCAL_BASE
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not os.access(debootstrap, os.X_OK):
        raise BuildError(f"{PINNED_BASE} cannot be pulled and debootstrap is missing (apt-get install debootstrap)")
    mirror = apt_mirror()
    say(f"{PINNED_BASE} cannot be pulled here: making {LOCAL_BASE} with debootstrap from {mirror} (once)")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / "debootstrap.log"
    with tempfile.TemporaryDirectory(prefix="beamhub-rootfs-") as tmp:
        root = Path(tmp) / "trixie"
        done = run(
            [
                debootstrap,
                "--variant=minbase",
                "--include=python3,python3-venv,python-is-python3,ca-certificates",
                "trixie",
                str(root),
                mirror,
            ],
            log=log,
        )
        if done.returncode != 0:
            raise BuildError(f"debootstrap failed; see {log}")
        shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [engine.docker, "import", "--change", 'CMD ["/bin/bash"]', "-", LOCAL_BASE],
            stdin=tar.stdout,
            capture_output=True,
        )
        tar.wait()
        if imported.returncode != 0:
            raise BuildError(f"docker import failed: {imported.stderr.decode().strip()}")
    return LOCAL_BASE


def choose_base(engine: Engine) -> str:
    if engine.has_image(PINNED_BASE) or engine.pull(PINNED_BASE):
        return PINNED_BASE
    return local_base(engine)


def conda_forge_reachable() -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(CONDA_FORGE, method="HEAD"), timeout=8):
            return True
    except OSError:
        return False


def declared_args(folder: str) -> set[str]:
    """The build arguments ``images/<folder>/Dockerfile`` declares (``ARG NAME`` or ``ARG NAME=default``)."""
    return set(re.findall(r"^ARG (\w+)", (REPO / "images" / folder / "Dockerfile").read_text(), re.M))


def build_args(folder: str, base: str, extra: dict[str, str]) -> dict[str, str]:
    """What a Dockerfile is handed: the base, the shared images and ``extra``, those it declares."""
    offered = {"BASE": base, **{arg: ref for arg, ref in COMMON.values()}, **extra}
    return {key: value for key, value in offered.items() if key in declared_args(folder)}


def build(
    engine: Engine, name: str, base: str, extra_args: dict[str, str], no_cache: bool, target: str | None = None
) -> float:
    """Build one image (or, with ``target``, one shared stage of images/common); returns seconds
    taken (raises BuildError with the log's tail)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    folder = "common" if target else name
    log = LOG_DIR / f"{name}.log"
    log.write_text("")
    ref = COMMON[target][1] if target else f"{REGISTRY}/{name}:{TAG}"
    args = [
        engine.docker,
        "build",
        "--progress=plain",
        "--network=host",
        "--label",
        PROJECT_LABEL,
        "-f",
        f"images/{folder}/Dockerfile",
        "-t",
        ref,
    ]
    if target:
        args += ["--target", target]
    for key, value in build_args(folder, base, extra_args).items():
        args += ["--build-arg", f"{key}={value}"]
    if CA_BUNDLE.is_file():  # the machine's trust store, for pip behind its network's CA; a secret, never a layer
        args += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    if no_cache:
        args.append("--no-cache")
    start = time.monotonic()
    done = subprocess.run(
        args + ["."],
        cwd=REPO,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BuildError(f"building {name} failed (full log: {log}):\n{tail}")
    return time.monotonic() - start


def image_size(engine: Engine, ref: str) -> int:
    out = run([engine.docker, "image", "inspect", "--format", "{{.Size}}", ref], timeout=30)
    return int(out.stdout.decode().strip() or 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help=f"images to build (default: all of {', '.join(IMAGES)})")
    p.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    p.add_argument("--summary", type=Path, help="write {name: {seconds, bytes}} as JSON here")
    args = p.parse_args(argv)
    names = args.names or list(IMAGES)
    unknown = [n for n in names if n not in IMAGES]
    if unknown:
        print(f"make images: unknown image(s) {', '.join(unknown)}; choose from {', '.join(IMAGES)}", file=sys.stderr)
        return 2
    engine = None
    try:
        engine = Engine(docker_cli())
        engine.start()
        base = choose_base(engine)
        tomopy = "conda" if conda_forge_reachable() and engine.pull("mambaorg/micromamba:2.0.5") else "none"
        if "tomo" in names and tomopy == "none":
            say(
                "conda-forge cannot be reached: the tomo image is built without tomopy "
                "(label org.beamhub.tomopy=absent)"
            )
        summary = {}
        # the shared stages first: every image starts from them (cached: a second or two each)
        for target, (_, ref) in COMMON.items():
            seconds = build(engine, f"common-{target}", base, {}, args.no_cache, target=target)
            size = image_size(engine, ref)
            summary[f"common/{target}"] = {"seconds": round(seconds, 1), "bytes": size, "base": base}
            say(f"[shared] {ref}: {size / 1e9:.2f} GB, {seconds:.0f} s")
        for number, name in enumerate(names, 1):
            say(f"[{number}/{len(names)}] building {REGISTRY}/{name}:{TAG} on {base} ...")
            seconds = build(engine, name, base, {"TOMOPY": tomopy} if name == "tomo" else {}, args.no_cache)
            size = image_size(engine, f"{REGISTRY}/{name}:{TAG}")
            summary[name] = {"seconds": round(seconds, 1), "bytes": size, "base": base}
            say(f"[{number}/{len(names)}] {name}: {size / 1e9:.2f} GB, {seconds:.0f} s")
        # keep the most recently used layers (the pip cache and today's images), drop the rest, and
        # remove our own images that a rebuild left untagged
        run([engine.docker, "builder", "prune", "--force", f"--keep-storage={CACHE_GB}GB"], timeout=600)
        run([engine.docker, "image", "prune", "--force", "--filter", f"label={PROJECT_LABEL}"], timeout=600)
        if args.summary:
            write_atomic(args.summary, json.dumps(summary, indent=2))
        return 0
    except BuildError as exc:
        print(f"make images: {exc}", file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.stop()


if __name__ == "__main__":
    raise SystemExit(main())
