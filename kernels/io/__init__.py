"""Reading and writing the formats the field uses; every writer is atomic.

Submodules add one format each (HDF5 volumes, Data Exchange, Dragonfly files);
:func:`atomic_output` is the one mechanism they all write through, and
:data:`HDF5_ERRORS` the exceptions a damaged HDF5 file raises.
"""

from beamhub.kernels.io.atomic import InputFormatError, atomic_output, check_output_path
from beamhub.kernels.io.hdf5errors import HDF5_ERRORS

__all__ = ["atomic_output", "check_output_path", "HDF5_ERRORS", "InputFormatError"]
