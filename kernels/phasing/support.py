"""Object supports: a centred ball for a static support, and shrink-wrap updates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from beamhub.kernels import backend

__all__ = ["ShrinkWrap", "centered_ball", "gaussian_blur", "shrinkwrap_support"]


def centered_ball(shape: tuple[int, ...], diameter: float, xp=np):
    """A disc (2D) or ball (3D) of ``diameter`` pixels centred at ``n // 2`` on every axis.

    Parameters
    ----------
    shape : tuple of int
        Array shape, 2 or 3 axes.
    diameter : float
        Diameter in pixels; a pixel is inside when its centre lies within
        ``diameter / 2`` of the centre.
    xp : module
        Array module of the result.

    Returns
    -------
    support : bool array of ``shape``
    """
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum((g - n // 2) ** 2 for g, n in zip(grids, shape))
    return xp.asarray(r2 <= (diameter / 2.0) ** 2)


def gaussian_blur(image, sigma: float):
    """Periodic Gaussian blur of a real image through the FFT.

    Parameters
    ----------
    image : (...) real array (numpy or cupy)
    sigma : float
        Standard deviation in pixels.

    Returns
    -------
    blurred : real array, same shape and module, ``image.dtype`` promoted to a float type.
    """
    xp = backend.array_module(image)
    real = image.dtype if image.dtype.kind == "f" else np.float32
    kernel = 1.0
    for axis, n in enumerate(image.shape):
        k = xp.fft.fftfreq(n).astype(real)
        shape = [1] * image.ndim
        shape[axis] = n
        kernel = kernel * xp.exp(-2.0 * np.pi**2 * sigma**2 * k**2).reshape(shape)
    spectrum = backend.fftn(image.astype(np.result_type(real, np.complex64)))
    spectrum *= kernel
    return backend.ifftn(spectrum, overwrite_x=True).real


@dataclass(frozen=True)
class ShrinkWrap:
    """Shrink-wrap schedule (Marchesini et al. 2003).

    Every ``every`` iterations the support becomes the pixels where
    ``|x|`` blurred by a Gaussian of ``sigma`` exceeds ``threshold`` times its
    maximum.  ``sigma`` ramps linearly from ``sigma`` to ``sigma_final`` over
    the run.

    Parameters
    ----------
    threshold : float
        Fraction of the blurred maximum, in (0, 1).
    sigma, sigma_final : float
        Blur widths in pixels at the start and at the end.
    every : int
        Iterations between updates.
    """

    threshold: float = 0.2
    sigma: float = 3.0
    sigma_final: float = 1.0
    every: int = 20

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"shrink-wrap threshold must be in (0, 1), got {self.threshold}")
        if self.sigma <= 0 or self.sigma_final <= 0:
            raise ValueError("shrink-wrap sigma and sigma_final must be positive")
        if self.every < 1:
            raise ValueError(f"shrink-wrap every must be >= 1, got {self.every}")

    def sigma_at(self, iteration: int, total: int) -> float:
        """Blur width at ``iteration`` of ``total``."""
        frac = iteration / max(total - 1, 1)
        return self.sigma + (self.sigma_final - self.sigma) * frac


def shrinkwrap_support(image, sigma: float, threshold: float):
    """New support from the current image.

    Parameters
    ----------
    image : (...) complex or real array
        Current real-space iterate.
    sigma : float
        Blur width in pixels.
    threshold : float
        Fraction of the maximum of the blurred modulus.

    Returns
    -------
    support : bool array, same shape and module as ``image``.
    """
    xp = backend.array_module(image)
    blurred = gaussian_blur(xp.abs(image), sigma)
    return blurred > threshold * blurred.max()
