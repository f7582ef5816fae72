"""Reading and writing the formats the field uses; every writer is atomic.

Submodules add one format each (HDF5 volumes, Data Exchange, Dragonfly files);
:func:`atomic_output` is the one mechanism they all write through.
"""

from beamhub.kernels.io.atomic import atomic_output, InputFormatError

__all__ = ["atomic_output", "InputFormatError"]
