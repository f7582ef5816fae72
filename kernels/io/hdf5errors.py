"""The exceptions h5py raises for a damaged HDF5 file, so readers can name the file instead.

A truncated or overwritten file fails in the HDF5 library, which h5py reports
as OSError (unreadable chunk, bad signature), RuntimeError (broken B-tree or
symbol table, "Unable to synchronously check link existence") or KeyError (a
link whose target cannot be decoded).  Readers catch exactly these around their
HDF5 access and raise :class:`~beamhub.kernels.io.InputFormatError` naming the
file, so a user sees one line, never a traceback from inside h5py.
"""

HDF5_ERRORS: tuple[type[BaseException], ...] = (OSError, RuntimeError, KeyError)


def describe(exc: BaseException) -> str:
    """One line for a damaged-file exception: its message, without h5py's nesting."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
