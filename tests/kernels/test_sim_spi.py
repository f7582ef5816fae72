"""The SPI simulator: geometry as make_detector builds it, photon statistics, files Dragonfly reads."""

import numpy as np
import pytest

from beamhub.kernels.emc.config import EMCConfig, load_problem
from beamhub.kernels.io import dragonfly as dio
from beamhub.kernels.sim.spi import simulate_spi, spi_detector, spi_intensity, write_spi


def test_detector_geometry_matches_make_detector():
    det = spi_detector(5, 10.0, stoprad=0.5, polarization="x")
    c = 2.0
    x, y = 0 - c, 4 - c  # pixel (i=0, j=4) is row 4 of the C-ordered list
    r = np.sqrt(x * x + y * y + 100.0)
    np.testing.assert_allclose(det.q[4], [10 * x / r, 10 * y / r, 10 * (10 / r - 1)])
    np.testing.assert_allclose(det.corr[4], 10 / r**3 * (1 - x * x / r**2))
    assert det.mask[12] == 2  # centre pixel under the beamstop
    assert det.mask[0] == 1  # corner outside the inscribed circle
    assert det.mask[2] == 0 and np.all(det.q[:, 2] <= 0)


def test_intensity_is_centrosymmetric_with_origin_at_half():
    rho = np.random.default_rng(0).random((9, 9, 9))
    inten = spi_intensity(rho)
    assert inten[4, 4, 4] == pytest.approx(rho.sum() ** 2)
    np.testing.assert_allclose(inten, inten[::-1, ::-1, ::-1], rtol=1e-9)  # I(q) = I(-q) about index 4


def test_photons_have_requested_mean_and_poisson_spread():
    sim = simulate_spi(num_data=400, detsize=15, detd=30, mean_count=200, rng=1)
    dense = sim.photons.to_dense()
    per_frame = dense.sum(axis=1)
    assert abs(per_frame.mean() - 200) < 3 * np.sqrt(200 / 400) + 2
    assert dense[:, sim.detector.mask == 2].sum() == 0
    assert len(sim.quaternions) == 400
    np.testing.assert_allclose(np.linalg.norm(sim.quaternions, axis=1), 1.0)


def test_written_folder_is_a_runnable_dragonfly_setup(tmp_path):
    sim = simulate_spi(num_data=30, detsize=11, detd=22, mean_count=50, rng=2)
    cfg_path = write_spi(tmp_path, sim, num_div=2, hdf5=True)
    text = cfg_path.read_text()
    assert "in_photons_file = make_data:::out_photons_file" in text
    cfg = EMCConfig.from_file(cfg_path)
    det, frames, q, w, _, _ = load_problem(cfg)
    assert frames.num_data == 30 and det.size == sim.intensity.shape[0]
    truth = np.fromfile(tmp_path / "intensity.bin").reshape(sim.intensity.shape)
    np.testing.assert_array_equal(truth, sim.intensity)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "true_quaternions.dat"), sim.quaternions, atol=1e-14)
    assert dio.is_hdf5(tmp_path / "photons.h5")
