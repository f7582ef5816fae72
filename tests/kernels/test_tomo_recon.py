"""Reconstruction accuracy of gridrec, fbp and sirt against the Shepp-Logan phantom."""

import numpy as np
import pytest
import scipy.ndimage

from beamhub.kernels import backend, sim
from beamhub.kernels import tomo as bt
from beamhub.kernels.tomo import _gridrec_cpu
from beamhub.kernels.tomo import gridrec as gridrec_module
from beamhub.kernels.tomo.filters import fourier_filter
from beamhub.kernels.tomo.gridrec import gridrec, padded_size

N = 96


@pytest.fixture(scope="module")
def scan():
    return sim.simulate_scan(n=N, rows=3, n_angles=144, center_offset=2.5, seed=3)


@pytest.fixture(scope="module")
def proj(scan):
    return bt.minus_log(bt.normalize(scan.tomo, scan.flat, scan.dark))


def _inside(n, ratio=0.95):
    x = np.arange(n) - (n - 1) / 2
    return (x[None] ** 2 + x[:, None] ** 2) < (ratio * n / 2) ** 2


def rel_error(rec, truth):
    m = _inside(truth.shape[-1])
    return float(np.sqrt(np.mean((rec - truth)[:, m] ** 2) / np.mean(truth[:, m] ** 2)))


def test_gridrec_is_the_exact_fourier_backprojection():
    """Gridding reproduces the direct (non-gridded) Fourier-sum FBP to 2e-3."""
    rng = np.random.default_rng(1)
    for n in (32, 33):
        n_angles = 20
        theta = np.linspace(0, np.pi, n_angles, endpoint=False)
        sino = rng.standard_normal((3, n_angles, n)).astype(np.float32)
        centers = np.array([(n - 1) / 2, (n - 1) / 2 + 1.3, (n - 1) / 2 - 2.2])
        out = gridrec(sino, theta, centers, "shepp")
        m = padded_size(n)
        f = np.fft.fftfreq(m)
        filt = fourier_filter("shepp", m) * (np.pi / n_angles) / m
        filt[m // 2] = 0
        x = np.arange(n) - (n - 1) / 2
        ref = np.zeros((3, n, n))
        for r in range(3):
            spec = np.fft.fft(sino[r], n=m, axis=-1) * filt
            for a, th in enumerate(theta):
                u = x[None, :] * np.cos(th) - x[:, None] * np.sin(th) + centers[r]  # y = -x[:, None] (up)
                ref[r] += np.real(np.exp(2j * np.pi * f * u[..., None]) @ spec[a])
        assert np.abs(out - ref).max() < 2e-3 * np.abs(ref).max()


def _cpu_loops(kind: str):
    """The C or the numba loops of gridrec's CPU path (skipping where that kind cannot be had)."""
    if kind == "c":
        lib = _gridrec_cpu.library()
        if lib is None:
            pytest.skip("no C compiler with AVX2 here: gridrec uses its numba loops")
        return _gridrec_cpu._c_loops(lib)
    return _gridrec_cpu.compiled()


@pytest.mark.parametrize("kind", ["c", "numba"])
@pytest.mark.parametrize("n, rows", [(32, 3), (33, 2), (64, 5)])
def test_cpu_gridrec_loops_match_the_sparse_matrix_path(n, rows, kind, monkeypatch):
    """The CPU's C and numba loops and the sparse product (GPU, no C) grid the same samples."""
    monkeypatch.setattr(_gridrec_cpu, "loops", lambda: _cpu_loops(kind))
    rng = np.random.default_rng(n)
    n_angles = 24 + n % 3
    theta = np.linspace(0, np.pi, n_angles, endpoint=False)
    sino = rng.standard_normal((rows, n_angles, n)).astype(np.float32)
    centers = (n - 1) / 2 + rng.uniform(-3, 3, rows)
    fast = gridrec_module._gridrec_cpu_rows(sino, theta, centers, "hann")
    ref = gridrec_module._gridrec_sparse(sino, theta, centers, "hann")
    assert fast.shape == ref.shape == (rows, n, n)
    assert np.abs(fast - ref).max() < 2e-5 * np.abs(ref).max()


@pytest.mark.parametrize(
    "algorithm, kwargs, bound",
    [
        ("gridrec", {"filter_name": "ramlak"}, 0.17),
        ("gridrec", {"filter_name": "shepp"}, 0.16),
        ("gridrec", {"filter_name": "cosine"}, 0.22),
        ("gridrec", {"filter_name": "hann"}, 0.29),
        ("gridrec", {"filter_name": "parzen"}, 0.37),
        ("fbp", {"filter_name": "shepp"}, 0.20),
        ("sirt", {"num_iter": 100}, 0.20),
    ],
)
def test_error_against_phantom(scan, proj, algorithm, kwargs, bound):
    rec = bt.recon(proj, scan.theta, center=scan.center, algorithm=algorithm, **kwargs)
    assert rec.shape == (3, N, N) and rec.dtype == np.float32
    assert rel_error(rec, scan.phantom) < bound


def test_flat_region_has_the_right_value(scan, proj):
    """Inside the brain (0.2 in phantom units) the mean attenuation is right to 2 %."""
    rec = bt.recon(proj, scan.theta, center=scan.center)
    truth = scan.phantom[1]
    brain = np.isclose(truth, 0.2 * truth.max())
    region = scipy.ndimage.binary_erosion(brain, iterations=4)  # away from every edge
    assert region.sum() > 100
    assert abs(rec[1][region].mean() / truth[region].mean() - 1) < 0.02


def test_wrong_center_is_worse(scan, proj):
    good = rel_error(bt.recon(proj, scan.theta, center=scan.center), scan.phantom)
    bad = rel_error(bt.recon(proj, scan.theta, center=scan.center + 3), scan.phantom)
    assert bad > good * 1.5


def test_gridrec_and_fbp_agree(scan):
    """Same filter, same data: they differ only where fbp's linear interpolation blurs edges."""
    p = scan.line_integrals
    a = bt.recon(p, scan.theta, center=scan.center, algorithm="gridrec", filter_name="hann")
    b = bt.recon(p, scan.theta, center=scan.center, algorithm="fbp", filter_name="hann")
    m = _inside(N, 0.9)
    assert np.sqrt(np.mean((a - b)[:, m] ** 2)) < 0.07 * np.sqrt(np.mean(b[:, m] ** 2))


def test_full_turn_scan():
    scan = sim.simulate_scan(n=64, rows=1, n_angles=180, angle_range=2 * np.pi, noise=False, seed=0)
    rec = bt.recon(scan.line_integrals, scan.theta, center=scan.center)
    assert rel_error(rec, scan.phantom) < 0.2


def test_chunks_threads_and_sinogram_order_give_the_same_result(scan, proj):
    one = bt.recon(proj, scan.theta, center=scan.center, nchunk=3, ncore=1)
    many = bt.recon(proj, scan.theta, center=scan.center, nchunk=1, ncore=2)
    sino = bt.recon(np.ascontiguousarray(np.moveaxis(proj, 1, 0)), scan.theta, center=scan.center, sinogram_order=True)
    np.testing.assert_allclose(one, many, atol=1e-5)
    np.testing.assert_allclose(one, sino, atol=1e-5)


def test_center_per_row(scan, proj):
    centers = np.full(3, scan.center)
    centers[2] += 4
    rec = bt.recon(proj, scan.theta, center=centers, algorithm="fbp")
    single = bt.recon(proj[:, 2:], scan.theta, center=scan.center + 4, algorithm="fbp")
    np.testing.assert_allclose(rec[2], single[0], atol=1e-5)


def test_bad_arguments_are_explained(scan, proj):
    with pytest.raises(ValueError, match="theta has 10 angles"):
        bt.recon(proj, scan.theta[:10])
    with pytest.raises(ValueError, match="algorithm='art'"):
        bt.recon(proj, scan.theta, algorithm="art")
    with pytest.raises(ValueError, match="filter_name='gauss'"):
        bt.recon(proj, scan.theta, filter_name="gauss")
    with pytest.raises(ValueError, match="center has 2 values for 3 rows"):
        bt.recon(proj, scan.theta, center=[1.0, 2.0])


def test_tomopy_backend_error_is_clear(scan, proj):
    # tomopy is not installable here; where it is, this checks the delegation instead
    try:
        import tomopy  # noqa: F401 - only whether it is installed
    except ImportError:
        with pytest.raises(backend.BackendError, match="needs tomopy.*backend='beamhub'"):
            bt.recon(proj, scan.theta, backend="tomopy")
    else:  # pragma: no cover - only where tomopy is installed
        rec = bt.recon(proj, scan.theta, center=scan.center, backend="tomopy")
        assert rec.shape == (3, N, N)


def test_circ_mask():
    arr = np.ones((2, 9, 9), dtype=np.float32)
    out = bt.circ_mask(arr, axis=0, val=-1)
    assert out[0, 4, 4] == 1 and out[0, 0, 0] == -1 and arr[0, 0, 0] == 1
    assert np.array_equal(out[0], out[1])


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="needs cupy and a GPU")
def test_cupy_matches_numpy(scan, proj):  # pragma: no cover - GPU only
    import cupy

    for algorithm in ("gridrec", "fbp", "sirt"):
        cpu = bt.recon(proj, scan.theta, center=scan.center, algorithm=algorithm, num_iter=10)
        gpu = bt.recon(cupy.asarray(proj), scan.theta, center=scan.center, algorithm=algorithm, num_iter=10)
        assert isinstance(gpu, cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(gpu), cpu, atol=2e-4 * float(np.abs(cpu).max()))
