"""Expand-Maximize-Compress orientation recovery for single-particle imaging (Dragonfly-compatible).

Modules, one job each: ``quaternions`` (600-cell sampling of SO(3)), ``detector``,
``photons`` (sparse frames), ``expand`` (slicing the model), ``maximize``
(likelihood, annealed probabilities), ``compress`` (merge, Friedel symmetry),
``run`` (the loop, checkpoints, figures), ``config`` (Dragonfly's config.ini),
``mpi`` (frames split across ranks).
"""

from beamhub.kernels.emc.config import EMCConfig, load_problem
from beamhub.kernels.emc.detector import Detector
from beamhub.kernels.emc.photons import Frames
from beamhub.kernels.emc.quaternions import num_rotations, quaternion_sampling, rotation_matrices
from beamhub.kernels.emc.run import EMC, EMCSettings, IterationFigures, run

__all__ = ["EMC", "EMCConfig", "EMCSettings", "Detector", "Frames", "IterationFigures",
           "load_problem", "num_rotations", "quaternion_sampling", "rotation_matrices", "run"]
