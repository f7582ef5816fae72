"""Expand-Maximize-Compress orientation recovery for single-particle imaging (Dragonfly-compatible).

Modules, one job each: ``quaternions`` (600-cell sampling of SO(3)), ``detector``,
``photons`` (sparse frames), ``expand`` / ``maximize`` / ``compress`` (the steps' math,
whole-array forms), ``ops`` (picks the operator set once: ``_native`` C kernels,
``_numba`` loops or ``_arrays`` whole arrays), ``share`` (each rank's orientations),
``iteration`` (the :class:`EMC` state and one iteration), ``loop`` (outputs, EMC.log,
checkpoints, resume), ``config`` (Dragonfly's config.ini), ``mpi`` (the communicator).
"""

from beamhub.kernels.emc.config import EMCConfig, load_problem
from beamhub.kernels.emc.detector import Detector
from beamhub.kernels.emc.iteration import EMC, EMCSettings, IterationFigures
from beamhub.kernels.emc.loop import run
from beamhub.kernels.emc.photons import Frames
from beamhub.kernels.emc.quaternions import num_rotations, quaternion_sampling, rotation_matrices

__all__ = [
    "EMC",
    "EMCConfig",
    "EMCSettings",
    "Detector",
    "Frames",
    "IterationFigures",
    "load_problem",
    "num_rotations",
    "quaternion_sampling",
    "rotation_matrices",
    "run",
]
