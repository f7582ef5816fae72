"""CDI simulator: the pattern is the squared modulus of the object's transform, with noise and beamstop."""

from __future__ import annotations

import numpy as np
import pytest

from beamhub.kernels.sim import random_object, simulate_cdi


@pytest.mark.parametrize("shape", [(12, 12), (6, 6, 6)])
def test_random_object_is_positive_inside_its_ball(shape):
    obj = random_object(shape, seed=0)
    assert obj.shape == shape and obj.min() >= 0 and obj.max() == pytest.approx(1.0)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum((g - (n - 1) / 2) ** 2 for g, n in zip(grids, shape))
    assert np.all(obj[r2 > (min(shape) / 2) ** 2] == 0)
    np.testing.assert_array_equal(obj, random_object(shape, seed=0))


def test_noise_free_pattern_is_the_object_transform():
    obj = random_object((10, 10), seed=1)
    data = simulate_cdi(obj, oversampling=2.5)
    assert data.intensity.shape == data.object.shape == (25, 25)
    np.testing.assert_allclose(np.fft.ifftshift(data.intensity), np.abs(np.fft.fftn(data.object)) ** 2)
    assert data.object.sum() == pytest.approx(obj.sum())
    assert data.support.sum() == (obj != 0).sum()
    assert not data.mask.any()


def test_object_is_centred():
    data = simulate_cdi(np.ones((4, 4, 4)), oversampling=3)
    idx = np.argwhere(data.object)
    assert idx.min(axis=0).tolist() == [4, 4, 4] and idx.max(axis=0).tolist() == [7, 7, 7]


def test_poisson_noise_and_beamstop():
    obj = random_object((8, 8, 8), seed=2)
    data = simulate_cdi(obj, oversampling=2, photons=1e6, beamstop=2, seed=3)
    measured = data.intensity[~data.mask]
    assert np.all(measured == np.round(measured)) and measured.min() >= 0
    assert np.all(data.intensity[data.mask] == -1)
    assert data.mask[8, 8, 8] and data.mask.sum() == 27  # distance < 2: 1 + 6 + 12 + 8 pixels
    expected = np.abs(np.fft.fftn(data.object)) ** 2
    assert expected.sum() == pytest.approx(1e6)
    hidden = np.fft.ifftshift(data.mask)
    assert measured.sum() == pytest.approx(expected[~hidden].sum(), rel=0.01)


@pytest.mark.parametrize("kwargs", [{"oversampling": 0.5}, {"photons": -1}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        simulate_cdi(np.ones((4, 4)), **kwargs)
