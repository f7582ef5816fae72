"""Write to a temporary name beside the target, then rename: a killed job leaves no partial file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


class InputFormatError(ValueError):
    """An input file is missing, unreadable or not in the expected format.

    The message names the file (and dataset or key) and what was wrong.
    """


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On any exception (or KeyboardInterrupt) the temporary file is removed and
    ``path`` is left as it was — absent or the previous complete version.

    >>> with atomic_output("out.h5") as tmp:        # doctest: +SKIP
    ...     with h5py.File(tmp, "w") as f:
    ...         f["x"] = data
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputFormatError(f"output folder {str(folder)!r} does not exist")
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else ".part", dir=folder
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
