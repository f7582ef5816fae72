"""The detector as EMC uses it: pixel q vectors, normalised corrections, mask, model size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from beamhub.kernels.io.dragonfly import DetectorFile

__all__ = ["Detector", "model_size"]


def model_size(q: np.ndarray, mask: np.ndarray) -> int:
    """Dragonfly's cubic model edge ``2 ceil(qmax) + 3`` over pixels with mask < 2.

    Parameters
    ----------
    q : ndarray, shape (num_pix, 3)
        Pixel q vectors in voxels.
    mask : ndarray, shape (num_pix,)
        Dragonfly mask (0, 1, 2).
    """
    used = np.asarray(mask) < 2
    qmax = float(np.linalg.norm(q[used], axis=1).max()) if used.any() else 0.0
    return 2 * math.ceil(qmax) + 3


@dataclass
class Detector:
    """Pixels used by EMC (mask < 2), with the correction normalised as Dragonfly's 3-D EMC does.

    Attributes
    ----------
    q : ndarray, shape (n_used, 3), float64
        q vectors of the used pixels, in voxels.
    corr : ndarray, shape (n_used,), float64
        ``corr / mean(corr over all pixels)`` of the used pixels.
    good : ndarray, shape (n_used,), bool
        Mask 0 (used in the likelihood); mask-1 pixels are only merged.
    used_index : ndarray, shape (n_used,), int64
        Index of each used pixel in the detector file (the photon indices' space).
    num_pix : int
        Pixels in the file (all masks).
    size, center : int
        Model edge and centre voxel index (``size // 2``).
    """

    q: np.ndarray
    corr: np.ndarray
    good: np.ndarray
    used_index: np.ndarray
    num_pix: int
    size: int
    center: int
    detd: float = 0.0
    ewald_rad: float = 0.0

    @classmethod
    def from_file(cls, det: DetectorFile, size: int | None = None) -> Detector:
        """Preprocess a detector file's content (normalise corr, pick pixels, size the model)."""
        mask = np.asarray(det.mask)
        used = np.flatnonzero(mask < 2)
        corr = det.corr / det.corr.mean()
        edge = int(size) if size else model_size(det.q, mask)
        return cls(
            q=np.ascontiguousarray(det.q[used]),
            corr=corr[used],
            good=mask[used] == 0,
            used_index=used,
            num_pix=det.num_pix,
            size=edge,
            center=edge // 2,
            detd=det.detd,
            ewald_rad=det.ewald_rad,
        )

    @property
    def rel_num_pix(self) -> int:
        """Number of mask-0 pixels."""
        return int(self.good.sum())
