"""Tomographic reconstruction with tomopy's names and array layout.

Projections are ``(angles, rows, columns)``, angles in radians, results
``(rows, N, N)`` in attenuation per pixel.  numpy on CPU (rows in chunks over
threads), cupy on GPU: every function returns the array type it was given.

>>> import beamhub.kernels.tomo as tomopy_like
>>> proj = tomopy_like.minus_log(tomopy_like.normalize(tomo, flat, dark))   # doctest: +SKIP
>>> rot = tomopy_like.find_center_vo(proj)                                   # doctest: +SKIP
>>> rec = tomopy_like.recon(proj, theta, center=rot, algorithm="gridrec")    # doctest: +SKIP
"""

from beamhub.kernels.tomo.center import find_center, find_center_vo
from beamhub.kernels.tomo.filters import FILTER_NAMES
from beamhub.kernels.tomo.mask import circ_mask
from beamhub.kernels.tomo.pipeline import ArrayScan, reconstruct_slabs
from beamhub.kernels.tomo.prep import (
    STRIPE_METHODS,
    minus_log,
    normalize,
    remove_stripe,
    remove_stripe_based_sorting,
    remove_stripe_fw,
)
from beamhub.kernels.tomo.recon import ALGORITHMS, recon

__all__ = [
    "ALGORITHMS",
    "ArrayScan",
    "FILTER_NAMES",
    "STRIPE_METHODS",
    "circ_mask",
    "find_center",
    "find_center_vo",
    "minus_log",
    "normalize",
    "recon",
    "reconstruct_slabs",
    "remove_stripe",
    "remove_stripe_based_sorting",
    "remove_stripe_fw",
]
