"""Write to a temporary name beside the target, then rename: the one atomic-write helper.

Every writer in BeamHub goes through :func:`atomic_output` (or :func:`write_atomic`
for a small text or bytes payload): the kernels' HDF5 and Dragonfly files (via
:mod:`beamhub.kernels.io.atomic`, which adds their output-path check), the hub's
secrets, pid files and job records, and the cluster simulator's results.  A reader
sees the previous complete file or the new complete one, never a partial one.

A writer killed outright (SIGKILL, out of memory, a node lost) cannot remove its
temporary ``.NAME.XXXX.part`` file, so the next write to the same target does:
every temporary file is held under an exclusive lock while it is written, and
one whose lock can be taken belongs to nobody any more.  A lock, unlike a pid,
also holds across pid namespaces (containers) sharing one folder.  The lock is
an open-file-description lock (Linux ``F_OFD_SETLK``): HDF5 flock()s the files
it opens, which a flock of ours would block, and a classic POSIX lock would be
dropped as soon as the writer closed its own descriptor of the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Linux's value where Python does not name it; struct flock is (short, short, off_t, off_t, pid_t)
_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_WHOLE_FILE_WRITE_LOCK = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)


def _try_lock(fd: int) -> None:
    """Take an exclusive lock on the whole of ``fd``'s file; OSError when another holds it."""
    fcntl.fcntl(fd, _F_OFD_SETLK, _WHOLE_FILE_WRITE_LOCK)


def remove_stale_parts(path: str | os.PathLike, suffix: str = ".part") -> list[Path]:
    """Remove the temporary files of writers of ``path`` that died; returns what was removed.

    A temporary file still locked by its writer (a run in progress) is left alone.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    removed = []
    pattern = str(folder / f".{glob.escape(target.name)}.*{glob.escape(suffix)}")
    for name in glob.glob(pattern):
        try:
            fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            _try_lock(fd)
            os.unlink(name)
            removed.append(Path(name))
        except OSError:  # locked by a live writer, or already gone
            pass
        finally:
            os.close(fd)
    return removed


def _locked_temp(target: Path, suffix: str) -> tuple[int, Path]:
    """A new temporary file beside ``target``, created and locked by us.

    A cleaner may delete a file between its creation and our lock; the inode
    check catches that and we simply take another name.
    """
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        try:
            _try_lock(fd)
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, Path(tmp)
        except OSError:
            pass
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On any exception (or KeyboardInterrupt) the temporary file is removed and
    ``path`` is left as it was — absent or the previous complete version.
    Temporary files left by killed earlier writers of ``path`` are removed first.

    Parameters
    ----------
    path : path-like
        The file to write; its folder must exist.
    suffix : str, optional
        Ending of the temporary name (default ``.part``; HDF5 writers pass ``.h5.part``).
    mode : int, optional
        Permission bits of the result; default ``0o644`` less the umask.  The temporary
        file is created ``0o600``, so a secret written with ``mode=0o600`` is never
        readable by others, not even while it is written.

    >>> with atomic_output("out.h5") as tmp:        # doctest: +SKIP
    ...     with h5py.File(tmp, "w") as f:
    ...         f["x"] = data
    """
    target = Path(path)
    suffix = suffix if suffix is not None else ".part"
    remove_stale_parts(target, suffix)
    fd, tmp_path = _locked_temp(target, suffix)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644 & ~_umask() if mode is None else mode)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: str | bytes, mode: int | None = None) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` through :func:`atomic_output`; returns ``path``."""
    with atomic_output(path, mode=mode) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
