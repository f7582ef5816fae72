"""600-cell orientation sampling: counts, weights, coverage, rotation convention."""

import numpy as np
import pytest

from beamhub.kernels.emc.quaternions import num_rotations, quaternion_sampling, rotation_matrices
from beamhub.kernels.sim.spi import random_quaternions


@pytest.mark.parametrize("n, expected", [(1, 60), (2, 420), (3, 1380), (4, 3240)])
def test_counts_follow_dragonfly_formula(n, expected):
    q, w = quaternion_sampling(n)
    assert num_rotations(n) == expected == len(q) == len(w)
    # the count formula of the issue: 60 + 360(n-1) + 300(n-1)(n-2) + 50(n-1)(n-2)(n-3)
    assert expected == 60 + 360 * (n - 1) + 300 * (n - 1) * (n - 2) + 50 * (n - 1) * (n - 2) * (n - 3)


def test_unit_quaternions_one_of_each_pair_and_weights():
    q, w = quaternion_sampling(3)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    dots = q @ q.T
    np.fill_diagonal(dots, 0.0)
    assert dots.min() > -1 + 1e-6  # no q together with -q
    assert dots.max() < 1 - 1e-6  # no duplicates
    assert w.min() > 0 and abs(w.sum() - 1.0) < 1e-12
    assert w.max() / w.min() < 2.0  # near-uniform volume shares


def test_sampling_covers_so3_finely():
    # every random rotation has a sample within the sampling's angular resolution
    q, _ = quaternion_sampling(4)
    probe = random_quaternions(2000, rng=0)
    nearest = np.abs(probe @ q.T).max(axis=1)
    worst_deg = np.rad2deg(2 * np.arccos(np.clip(nearest.min(), -1, 1)))
    assert worst_deg < 20.0


def test_weights_integrate_over_so3():
    # uniform measure on S^3: E[x^2] = 1/4, E[x^4] = 1/8, E[x^2 y^2] = 1/24 for any components
    q, w = quaternion_sampling(4)
    assert abs(w @ q[:, 1] ** 2 - 1 / 4) < 1e-3
    assert abs(w @ q[:, 0] ** 4 - 1 / 8) < 1e-3
    assert abs(w @ (q[:, 2] ** 2 * q[:, 3] ** 2) - 1 / 24) < 1e-3
    # an eighth-order moment, E[q0^4 q1^4] = 3/640, still exact to sampling accuracy
    assert abs(w @ (q[:, 0] ** 4 * q[:, 1] ** 4) - 3 / 640) < 1e-4


def test_rotation_matrices_are_transposed_rotations():
    q = random_quaternions(50, rng=3)
    m = rotation_matrices(q)
    np.testing.assert_allclose(m @ np.transpose(m, (0, 2, 1)), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)
    # a rotation by angle a about z: the usual matrix maps x to (cos a, sin a, 0); ours is its inverse
    a = 0.3
    mz = rotation_matrices(np.array([[np.cos(a / 2), 0, 0, np.sin(a / 2)]]))[0]
    np.testing.assert_allclose(mz @ [1, 0, 0], [np.cos(a), -np.sin(a), 0], atol=1e-12)
