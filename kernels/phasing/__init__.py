"""Iterative phase retrieval in 2D and 3D: ER, HIO, RAAR; static and shrink-wrap support.

The entry point is :func:`phase`; :class:`Step` describes one stage of a run and
:class:`ShrinkWrap` a support-update schedule.  ``align`` removes the
translation/twin/phase ambiguities between solutions, ``prtf`` measures how
reproducibly they were phased, and ``projections`` holds the fused per-iteration
operators.
"""

from beamhub.kernels.phasing.align import aligned_error, center, register
from beamhub.kernels.phasing.prtf import prtf
from beamhub.kernels.phasing.retrieval import ALGORITHMS, PhasingResult, Step, phase
from beamhub.kernels.phasing.support import ShrinkWrap, centered_ball

__all__ = [
    "ALGORITHMS",
    "PhasingResult",
    "ShrinkWrap",
    "Step",
    "aligned_error",
    "center",
    "centered_ball",
    "phase",
    "prtf",
    "register",
]
