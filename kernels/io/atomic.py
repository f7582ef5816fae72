"""The kernels' outputs: a path checked before any work, then written atomically.

The mechanism (temporary name beside the target, rename, leftovers of killed
writers removed) is :mod:`beamhub.atomic`, shared with the hub and the scheduler;
this module adds what the kernels' commands need on top: a refusal, before a
long reconstruction starts, of an output path that cannot be written, as the
kernels' own :class:`InputFormatError`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from beamhub import atomic


class InputFormatError(ValueError):
    """An input file is missing, unreadable or not in the expected format.

    The message names the file (and dataset or key) and what was wrong.
    """


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output path that cannot be written as a file, before any work is done.

    Raises
    ------
    InputFormatError
        ``path`` is an existing folder, or its folder does not exist.
    """
    target = Path(path)
    if target.is_dir():
        raise InputFormatError(f"output {str(target)!r} is a folder; give a file name inside it")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputFormatError(f"output folder {str(folder)!r} does not exist")
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """:func:`beamhub.atomic.atomic_output` after :func:`check_output_path`.

    Yields a temporary path beside ``path`` that becomes ``path`` on success;
    on any exception ``path`` is left as it was.
    """
    with atomic.atomic_output(check_output_path(path), suffix) as tmp:
        yield tmp
