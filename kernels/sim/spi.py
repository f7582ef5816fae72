"""Single-particle imaging data with ground truth, in Dragonfly's formats.

A random 3-D object (a few overlapping Gaussian blobs), its intensity
``|fftshift(fftn(density))|²`` on the EMC model grid, a flat detector as
Dragonfly's make_detector builds it, uniformly random orientations and Poisson
photons at a chosen mean count per frame (as make_data), plus the files a
Dragonfly run reads (``config.ini`` with ``make_data:::out_photons_file``
references, detector, photons, intensity ``.bin``) and the true orientations.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beamhub.kernels.backend import default_rng
from beamhub.kernels.emc.detector import model_size
from beamhub.kernels.emc.expand import slice_model
from beamhub.kernels.emc.quaternions import rotation_matrices
from beamhub.kernels.io import dragonfly as dio
from beamhub.kernels.io.atomic import atomic_output
from beamhub.kernels.io.dragonfly import DetectorFile, SparsePhotons

__all__ = [
    "SPISimulation",
    "spi_density",
    "spi_intensity",
    "spi_detector",
    "random_quaternions",
    "spi_photons",
    "simulate_spi",
    "write_spi",
]


def spi_density(size: int, diameter: float, num_blobs: int = 16, rng=None, blob_width: float = 0.8) -> np.ndarray:
    """A random, non-negative 3-D object of about ``diameter`` voxels, centred in a ``size`` cube.

    ``num_blobs`` compact Gaussian "atoms" (σ = ``blob_width`` voxels) at random places in a
    ball of the diameter: no symmetry, and speckles out to the model's edge.

    Returns
    -------
    ndarray, shape (size, size, size), float64
    """
    rng = default_rng(rng)
    c = size // 2
    grid = np.indices((size,) * 3, dtype=np.float64) - c
    rho = np.zeros((size,) * 3)
    radius = diameter / 2.0
    for _ in range(num_blobs):
        u = rng.normal(size=3)
        pos = u / np.linalg.norm(u) * radius * rng.random() ** (1 / 3)
        width = blob_width
        r2 = ((grid - pos[:, None, None, None]) ** 2).sum(axis=0)
        rho += rng.uniform(0.5, 1.5) * np.exp(-r2 / (2 * width**2))
    return rho


def spi_intensity(density: np.ndarray) -> np.ndarray:
    """``|fftshift(fftn(density))|²`` with q = 0 at index ``size // 2`` (make_intensities).

    Returns
    -------
    ndarray, shape of ``density``, float64
    """
    f = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(density)))
    return np.abs(f) ** 2


def spi_detector(
    detsize: int, detd: float, stoprad: float = 0.0, polarization: str = "x", ewald_rad: float | None = None
):
    """A square detector as make_detector builds it (distances in pixels, q in voxels).

    Parameters
    ----------
    detsize : int
        Pixels along each side.
    detd : float
        Detector distance in pixels (``detd_mm / pixsize_mm``).
    stoprad : float
        Beamstop radius in pixels (mask 2 inside).
    polarization : {"x", "y", "none"}
    ewald_rad : float, optional
        Ewald-sphere radius in voxels (default ``detd``).

    Returns
    -------
    beamhub.kernels.io.dragonfly.DetectorFile
    """

    if polarization not in ("x", "y", "none"):
        raise ValueError(f"polarization must be x, y or none, not {polarization!r}")
    c = (detsize - 1) / 2.0
    i, j = np.meshgrid(np.arange(detsize), np.arange(detsize), indexing="ij")
    x, y = (i - c).ravel(), (j - c).ravel()
    L = float(detd)
    R = float(ewald_rad) if ewald_rad else L
    r = np.sqrt(x * x + y * y + L * L)
    q = np.stack([R * x / r, R * y / r, R * (L / r - 1.0)], axis=1)
    pol = {"x": 1 - x * x / r**2, "y": 1 - y * y / r**2, "none": 1 - (x * x + y * y) / (2 * r**2)}[polarization]
    corr = L / r**3 * pol
    rad = np.hypot(x, y)
    mask = np.zeros(detsize * detsize, dtype=np.uint8)
    mask[rad > min(c, c)] = 1
    mask[rad <= stoprad] = 2
    return DetectorFile(q=q, corr=corr, mask=mask, detd=L, ewald_rad=R)


def random_quaternions(n: int, rng=None) -> np.ndarray:
    """``n`` uniformly random unit quaternions, shape (n, 4), scalar first, q0 ≥ 0."""
    rng = default_rng(rng)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    return q


def spi_photons(
    intensity: np.ndarray, detector, quats: np.ndarray, mean_count: float, rng=None, scale: np.ndarray | None = None
):
    """Poisson photon frames of ``intensity`` seen in orientations ``quats``.

    The expected frame is the intensity sliced at the rotated pixel q (trilinear, as EMC
    expands) times the detector's ``corr``, rescaled so frames hold ``mean_count`` photons on
    average over mask < 2 pixels (times ``scale`` per frame if given); mask-2 pixels get none.

    Returns
    -------
    photons : SparsePhotons
    fluence : float
        The factor applied to ``intensity × corr``.
    """

    rng = default_rng(rng)
    used = detector.mask < 2
    size = intensity.shape[0]
    rot = rotation_matrices(quats)
    frames = np.zeros((len(quats), detector.num_pix), dtype=np.int32)
    expected = np.zeros((len(quats), int(used.sum())))
    for a in range(0, len(quats), 512):
        sl, _ = slice_model(intensity, rot[a : a + 512], np.ascontiguousarray(detector.q[used]), size // 2)
        expected[a : a + 512] = sl * detector.corr[used]
    fluence = mean_count / expected.sum(axis=1).mean()
    lam = expected * fluence
    if scale is not None:
        lam *= np.asarray(scale)[:, None]
    frames[:, used] = rng.poisson(lam)
    return SparsePhotons.from_dense(frames), float(fluence)


@dataclass
class SPISimulation:
    """Simulated SPI data and its ground truth.

    Attributes
    ----------
    density, intensity : ndarray, shape (s, s, s), float64
        The object and its diffraction intensity (q = 0 at ``s // 2``).
    detector : DetectorFile
    quaternions : ndarray, shape (num_data, 4)
        True orientation of each frame (Dragonfly's convention, see quaternions.py).
    photons : SparsePhotons
    fluence : float
        Photons per unit of ``intensity × corr``.
    scale : ndarray, shape (num_data,), float64
        Per-frame relative fluence (all 1 unless ``gamma_fluence`` was set).
    """

    density: np.ndarray
    intensity: np.ndarray
    detector: object
    quaternions: np.ndarray
    photons: object
    fluence: float
    scale: np.ndarray


def simulate_spi(
    *,
    num_data: int = 1000,
    detsize: int = 31,
    detd: float = 60.0,
    stoprad: float = 2.0,
    mean_count: float = 300.0,
    diameter: float | None = None,
    polarization: str = "x",
    scale_spread: float = 0.0,
    rng=None,
) -> SPISimulation:
    """Simulate SPI frames with ground truth (all lengths in pixels / voxels).

    Parameters
    ----------
    num_data : int
        Frames.
    detsize : int
        Detector pixels per side.
    detd : float
        Detector distance in pixels.
    stoprad : float
        Beamstop radius in pixels.
    mean_count : float
        Mean photons per frame.
    diameter : float, optional
        Object diameter in voxels (default a third of the model edge, oversampling ≈ 3).
    scale_spread : float
        Relative spread of the per-frame fluence (gamma-distributed, mean 1); 0 = constant.
    rng : int or Generator, optional

    Returns
    -------
    SPISimulation
    """

    rng = default_rng(rng)
    det = spi_detector(detsize, detd, stoprad, polarization)
    size = model_size(det.q, det.mask)
    density = spi_density(size, diameter or size / 3.0, rng=rng)
    intensity = spi_intensity(density)
    quats = random_quaternions(num_data, rng)
    if scale_spread > 0:
        k = 1.0 / scale_spread**2
        scale = rng.gamma(k, 1.0 / k, size=num_data)
    else:
        scale = np.ones(num_data)
    photons, fluence = spi_photons(intensity, det, quats, mean_count, rng, scale if scale_spread > 0 else None)
    return SPISimulation(density, intensity, det, quats, photons, fluence, scale)


CONFIG_TEMPLATE = """\
# Written by `beamhub simulate spi`; Dragonfly's emc and `beamhub emc` both read it.
[parameters]
detsize = {detsize}
polarization = {polarization}

[make_detector]
out_detector_file = {det_name}

[make_intensities]
out_intensity_file = intensity.bin

[make_data]
num_data = {num_data}
mean_count = {mean_count}
out_photons_file = {photons_name}

[emc]
in_photons_file = make_data:::out_photons_file
in_detector_file = make_detector:::out_detector_file
num_div = {num_div}
output_folder = data/
log_file = EMC.log
need_scaling = {need_scaling}
beta = {beta}
beta_schedule = {beta_jump} {beta_period}
"""


def write_spi(
    folder: str | os.PathLike,
    sim: SPISimulation,
    *,
    num_div: int = 6,
    hdf5: bool = False,
    beta: str = "auto",
    beta_schedule: tuple[float, int] = (1.41421356, 10),
    polarization: str = "x",
    need_scaling: bool | None = None,
) -> Path:
    """Write a simulation as a Dragonfly reconstruction folder; returns the config.ini path.

    Files: ``config.ini``, ``det.dat`` (or ``det.h5``), ``photons.emc`` (or ``photons.h5``),
    ``intensity.bin`` (truth, float64), ``density.bin``, ``true_quaternions.dat`` (one
    ``q0 q1 q2 q3`` line per frame, the frame's true orientation), ``true_scale.dat`` and an
    empty ``data/`` output folder.
    """

    folder = Path(folder)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    det_name = "det.h5" if hdf5 else "det.dat"
    photons_name = "photons.h5" if hdf5 else "photons.emc"
    dio.write_detector(folder / det_name, sim.detector)
    dio.write_photons(folder / photons_name, sim.photons)
    dio.write_intensity_bin(folder / "intensity.bin", sim.intensity)
    dio.write_intensity_bin(folder / "density.bin", sim.density)
    with atomic_output(folder / "true_quaternions.dat") as tmp:
        np.savetxt(tmp, sim.quaternions, fmt="%+.15f")
    with atomic_output(folder / "true_scale.dat") as tmp:
        np.savetxt(tmp, sim.scale, fmt="%.15e")
    if need_scaling is None:
        need_scaling = bool(np.any(sim.scale != 1.0))
    detsize = int(round(math.sqrt(sim.detector.num_pix)))
    total = sim.photons.ones.sum() + sim.photons.count_multi.sum()
    mean_count = total / max(sim.photons.num_data, 1)
    text = CONFIG_TEMPLATE.format(
        detsize=detsize,
        polarization=polarization,
        det_name=det_name,
        num_data=sim.photons.num_data,
        mean_count=f"{mean_count:.3f}",
        photons_name=photons_name,
        num_div=num_div,
        need_scaling=int(need_scaling),
        beta=beta,
        beta_jump=beta_schedule[0],
        beta_period=beta_schedule[1],
    )
    with atomic_output(folder / "config.ini") as tmp:
        tmp.write_text(text)
    return folder / "config.ini"
