"""tomopy's geometry, checked against projectors we did not write (scikit-image, ASTRA).

An asymmetric phantom (no mirror or rotation symmetry) is projected by
scikit-image's ``radon`` and by ASTRA's parallel-beam projector, and our
reconstructions must return it as given: no flip, no rotation, and a
sub-pixel registration shift below 0.1 px.  The transform from scikit-image's
convention is :func:`beamhub.kernels.tomo.geometry.skimage_to_tomopy`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from beamhub.kernels import sim
from beamhub.kernels import tomo as bt
from beamhub.kernels.tomo.geometry import skimage_to_tomopy

skimage_transform = pytest.importorskip("skimage.transform")
phase_cross_correlation = pytest.importorskip("skimage.registration").phase_cross_correlation

REPO = Path(__file__).resolve().parents[2]

# value, a, b, c, x0, y0, z0, phi (degrees) in half field-of-view units, y up:
# a body, a bright blob up-left, a dark tilted bar down-right, a dot near the bottom.
ASYMMETRIC = np.array(
    [
        [1.0, 0.62, 0.78, 1.0, 0.00, 0.00, 0.0, 0.0],
        [0.8, 0.16, 0.10, 1.0, -0.30, 0.42, 0.0, 0.0],
        [-0.6, 0.28, 0.07, 1.0, 0.25, -0.30, 0.0, 30.0],
        [0.9, 0.05, 0.05, 1.0, 0.12, -0.60, 0.0, 0.0],
    ]
)


def phantom(n: int, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """The phantom on an ``n x n`` grid, moved by ``dx`` right and ``dy`` up (pixels)."""
    table = ASYMMETRIC.copy()
    half = 0.9 * n / 2  # pixels per half field of view
    table[:, 4] += dx / half
    table[:, 5] += dy / half
    return sim.shepp_logan_3d(n, 1, z_range=(0.0, 0.0), scale=0.9, table=table)[0]


def inside(n: int, ratio: float = 0.9) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2
    return (x[None] ** 2 + x[:, None] ** 2) < (ratio * n / 2) ** 2


def rel_error(rec: np.ndarray, truth: np.ndarray) -> float:
    m = inside(truth.shape[-1])
    return float(np.sqrt(np.mean((rec - truth)[m] ** 2) / np.mean(truth[m] ** 2)))


def shift_of(rec: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The (rows, columns) shift that moves ``rec`` onto ``truth``, to 0.01 px."""
    m = inside(truth.shape[-1])
    shift, _, _ = phase_cross_correlation(truth * m, rec * m, upsample_factor=100, normalization=None)
    return np.asarray(shift)


def assert_as_returned(rec: np.ndarray, truth: np.ndarray, bound: float) -> None:
    """``rec`` is ``truth`` (within ``bound``), not any of its flips/rotations, at the expected place."""
    err = rel_error(rec, truth)
    assert err < bound, f"relative error {err:.3f} >= {bound}"
    for k, flip in [(0, True), (1, False), (2, False), (3, False), (2, True)]:
        other = np.rot90(rec, k)
        other = other[::-1] if flip else other
        assert rel_error(other, truth) > 3 * err, f"rot90 k={k}, flip={flip} fits as well"
    shift = shift_of(rec, truth)
    assert np.all(np.abs(shift) < 0.1), f"shift {shift} px"


def test_our_projector_follows_tomopy_at_0_and_90_degrees():
    """At 0 rays run down the columns; at 90 degrees column k sees row N-1-k (tomopy's project.c)."""
    n = 64
    img = phantom(n)
    proj = sim.project_phantom(
        np.array([0.0, np.pi / 2]), n, 1, (n - 1) / 2, z_range=(0.0, 0.0), scale=0.9, table=ASYMMETRIC
    )[:, 0]
    scale = np.abs(img.sum(axis=0)).max()
    assert np.abs(proj[0] - img.sum(axis=0)).max() < 0.02 * scale
    assert np.abs(proj[1] - img.sum(axis=1)[::-1]).max() < 0.02 * scale


@pytest.mark.parametrize("algorithm, bound", [("gridrec", 0.12), ("fbp", 0.12), ("sirt", 0.15)])
def test_skimage_radon_odd_size_comes_back_as_given(algorithm, bound):
    n = 97  # odd: scikit-image's axis N // 2 is the detector middle
    img = phantom(n)
    deg = np.linspace(0.0, 180.0, 240, endpoint=False)
    tomo, theta, center = skimage_to_tomopy(skimage_transform.radon(img, deg, circle=True), deg)
    assert center == (n - 1) / 2
    rec = bt.recon(tomo, theta, center=center, algorithm=algorithm, num_iter=150)[0]
    assert_as_returned(rec, img, bound)


def test_skimage_radon_even_size_is_half_a_pixel_up_and_left():
    """Even N: scikit-image rotates about pixel N/2; recon centres the slice on the axis."""
    n = 96
    img = phantom(n)
    deg = np.linspace(0.0, 180.0, 240, endpoint=False)
    tomo, theta, center = skimage_to_tomopy(skimage_transform.radon(img, deg, circle=True), deg)
    assert center == n // 2
    rec = bt.recon(tomo, theta, center=center)[0]
    # rec[i, j] = img(i + 0.5, j + 0.5): the object half a pixel left and up ...
    assert_as_returned(rec, phantom(n, dx=-0.5, dy=0.5), 0.12)
    # ... so moving rec half a pixel down and right restores img
    assert np.all(np.abs(shift_of(rec, img) - 0.5) < 0.1)


def test_our_projector_round_trip_on_the_asymmetric_phantom():
    n = 96
    img = phantom(n)
    theta = np.linspace(0.0, np.pi, 240, endpoint=False)
    center = (n - 1) / 2 + 3.3
    proj = sim.project_phantom(theta, n, 1, center, z_range=(0.0, 0.0), scale=0.9, table=ASYMMETRIC)
    for algorithm in ("gridrec", "fbp"):
        rec = bt.recon(proj.astype(np.float32), theta, center=center, algorithm=algorithm)[0]
        assert_as_returned(rec, img, 0.12)


def _python_with_astra() -> str | None:
    candidates = [sys.executable, str(REPO / "benchmarks" / ".envs" / "tomo" / "bin" / "python")]
    for python in candidates:
        if (
            Path(python).exists()
            and subprocess.run([python, "-c", "import astra"], capture_output=True).returncode == 0
        ):
            return python
    return None


ASTRA_PROJECT = """
import sys, numpy as np, astra
img = np.load(sys.argv[1]); theta = np.load(sys.argv[2]); n = img.shape[0]
vol = astra.create_vol_geom(n, n)
geom = astra.create_proj_geom("parallel", 1.0, n, theta)
pid = astra.create_projector("strip", geom, vol)
_, sino = astra.create_sino(img.astype(np.float32), pid)
np.save(sys.argv[3], sino)
"""


@pytest.mark.parametrize("n", [96, 97])
def test_astra_parallel_projection_comes_back_as_given(tmp_path, n):
    """ASTRA places volume and detector centres exactly, so its axis is (N-1)/2 at any N."""
    python = _python_with_astra() or pytest.skip(
        "astra-toolbox is not installed here nor in benchmarks/.envs/tomo (benchmarks/tomo.py creates that)"
    )
    img = phantom(n)
    theta = np.linspace(0.0, np.pi, 240, endpoint=False)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "theta.npy", theta)
    subprocess.run(
        [
            python,
            "-c",
            ASTRA_PROJECT,
            str(tmp_path / "img.npy"),
            str(tmp_path / "theta.npy"),
            str(tmp_path / "sino.npy"),
        ],
        check=True,
        timeout=300,
    )
    sino = np.load(tmp_path / "sino.npy")  # (angles, columns)
    for algorithm in ("gridrec", "fbp"):
        rec = bt.recon(sino[:, None, :].astype(np.float32), theta, center=(n - 1) / 2, algorithm=algorithm)[0]
        assert_as_returned(rec, img, 0.12)


def test_skimage_transform_rejects_a_mismatched_sinogram():
    with pytest.raises(ValueError, match="does not match 5 angles"):
        skimage_to_tomopy(np.zeros((16, 4)), np.arange(5))
