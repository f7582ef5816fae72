"""Our C kernels: each source compiled once per machine into a cached shared library, loaded with ctypes.

The system C compiler (``$CC``, else gcc/cc) builds a source with ``-march=native`` into
``$BEAMHUB_CACHE_DIR`` (default ``~/.cache/beamhub``), named by a hash of the source, the
compiler, the flags and the CPU (a library built for one CPU may not run on another), and
renames it into place, so concurrent processes (MPI ranks, test workers) may build it at once.
Callers keep a pure-Python or numba path for machines without a compiler or AVX2: :func:`load`
then answers None, with one warning when a build was tried and failed.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["cpu_signature", "has_avx2", "cache_dir", "compiler", "build", "load"]

#: Compile flags shared by our kernels.  -ffast-math lets gcc vectorise expf/logf through glibc's
#: libmvec, but only when compiling: linked with it, gcc 12 adds crtfastmath.o, whose constructor
#: turns on flush-to-zero for the whole process (numpy would lose subnormals).
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fPIC", "-std=c11")
LINK_FLAGS = ("-shared",)

Signatures = Mapping[str, tuple[Sequence[object], object]]


def cpu_signature() -> str:
    """CPU model and flags: a library built with -march=native runs only on its kind of CPU."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
    return "\n".join(keep)


def has_avx2() -> bool:
    """True on an x86-64 CPU with AVX2 and FMA, the least our kernels are written for."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    flags = cpu_signature()
    return " avx2" in flags and " fma" in flags


def cache_dir() -> Path:
    """Where built libraries are kept: ``$BEAMHUB_CACHE_DIR``, else ``$XDG_CACHE_HOME/beamhub``."""
    base = os.environ.get("BEAMHUB_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "beamhub"


def compiler() -> str | None:
    """The C compiler to use, or None."""
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def build(
    source: Path,
    cc: str,
    dest_dir: Path,
    flags: Sequence[str] = FLAGS,
    link_flags: Sequence[str] = LINK_FLAGS,
) -> Path:
    """Compile ``source`` into ``dest_dir`` once per source/compiler/flags/CPU; returns the .so path.

    Raises RuntimeError with the compiler's message when the build fails.
    """
    text = source.read_bytes()
    key = hashlib.sha256(text + " ".join([cc, *flags, *link_flags]).encode() + cpu_signature().encode())
    stem = source.stem.lstrip("_")
    target = dest_dir / f"{stem}_{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}_", suffix=".so", dir=dest_dir)
    os.close(fd)
    obj = tmp[:-3] + ".o"
    try:
        for cmd in ([cc, *flags, "-c", str(source), "-o", obj], [cc, *link_flags, obj, "-o", tmp, "-lm"]):
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if res.returncode != 0:
                raise RuntimeError(f"{cc} could not build {source.name}: {res.stderr.strip()[:2000]}")
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, obj):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return target


def load(
    source: Path,
    signatures: Signatures,
    *,
    flags: Sequence[str] = FLAGS,
    link_flags: Sequence[str] = LINK_FLAGS,
    what: str,
) -> ctypes.CDLL | None:
    """Build (if needed) and load ``source``, declaring each function's ctypes signature.

    Parameters
    ----------
    source : Path
        The C file.
    signatures : mapping of str to (argtypes, restype)
    flags, link_flags : sequence of str
        Compiler and linker flags (OpenMP users add ``-fopenmp`` to both).
    what : str
        Names the kernels in the warning given when a build fails (``"EMC native kernels"``).

    Returns
    -------
    ctypes.CDLL or None
        None without AVX2 or a compiler, or (with a RuntimeWarning) when the build fails.
    """
    if not has_avx2():
        return None
    cc = compiler()
    if cc is None:
        return None
    try:
        lib = ctypes.CDLL(str(build(source, cc, cache_dir(), flags, link_flags)))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        warnings.warn(f"{what} unavailable: {exc}", RuntimeWarning, stacklevel=3)
        return None
    for name, (args, res) in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = list(args)
        fn.restype = res
    return lib
