"""Phase retrieval: recovery of simulated objects, operators, alignment, PRTF."""

from __future__ import annotations

import numpy as np
import pytest

from beamhub.kernels import backend
from beamhub.kernels.phasing import (
    ShrinkWrap,
    Step,
    aligned_error,
    center,
    centered_ball,
    phase,
    projections,
    prtf,
    register,
)
from beamhub.kernels.phasing.align import circular_center, twin
from beamhub.kernels.sim import random_object, simulate_cdi

HIO_ER = [Step("hio", 200, 0.9), Step("er", 50)]


@pytest.fixture(scope="module")
def pattern_2d():
    return simulate_cdi(random_object((16, 16), seed=1), oversampling=3, seed=2)


@pytest.fixture(scope="module")
def noisy_2d():
    return simulate_cdi(random_object((16, 16), seed=3), oversampling=3, photons=1e9, beamstop=1.5, seed=4)


@pytest.fixture(scope="module")
def pattern_3d():
    return simulate_cdi(random_object((8, 8, 8), seed=5), oversampling=3, photons=1e10, beamstop=1.0, seed=6)


# --- recovery of known objects -------------------------------------------------------------


@pytest.mark.parametrize("real_fft", [True, False])
def test_hio_er_recovers_2d_object(pattern_2d, real_fft):
    res = phase(pattern_2d.intensity, support=18, algorithms=HIO_ER, n_starts=3, seed=0, real_fft=real_fft)
    assert res.info["real_fft"] is real_fft
    assert res.scores[0] < 1e-3
    assert aligned_error(res.images[0], pattern_2d.object) < 0.01


@pytest.mark.parametrize("real_fft", [True, False])
def test_raar_recovers_2d_object(pattern_2d, real_fft):
    res = phase(
        pattern_2d.intensity,
        support=18,
        algorithms=[Step("raar", 200, 0.9), Step("er", 50)],
        n_starts=3,
        seed=0,
        real_fft=real_fft,
    )
    assert aligned_error(res.images[0], pattern_2d.object) < 0.05


@pytest.mark.parametrize("real_fft", [True, False])
def test_noisy_pattern_with_beamstop_is_recovered(noisy_2d, real_fft):
    assert (noisy_2d.intensity < 0).sum() == noisy_2d.mask.sum() > 0
    res = phase(noisy_2d.intensity, support=18, algorithms=HIO_ER, n_starts=4, seed=1, real_fft=real_fft)
    assert aligned_error(res.images[0], noisy_2d.object) < 0.05


@pytest.mark.parametrize("real_fft", [True, False])
def test_hio_er_recovers_3d_object(pattern_3d, real_fft):
    res = phase(pattern_3d.intensity, support=10, algorithms=HIO_ER, n_starts=2, n_best=2, seed=0, real_fft=real_fft)
    assert res.images.shape == (2, 24, 24, 24)
    assert aligned_error(res.images[0], pattern_3d.object) < 0.05


def test_double_precision_recovers_too(pattern_2d):
    res = phase(pattern_2d.intensity, support=18, algorithms=HIO_ER, n_starts=2, seed=0, dtype=np.complex128)
    assert res.images.dtype == np.complex128
    assert aligned_error(res.images[0], pattern_2d.object) < 0.01


def test_shrinkwrap_converges_on_the_object():
    data = simulate_cdi(random_object((16, 16), seed=7), oversampling=3, seed=8)
    truth = data.support
    res = phase(
        data.intensity,
        support=30,
        algorithms=[Step("hio", 400, 0.9), Step("er", 100)],
        shrinkwrap=ShrinkWrap(threshold=0.1, sigma=2.0, sigma_final=0.7, every=20),
        n_starts=3,
        seed=0,
    )
    final = res.supports[0]
    aligned_truth, _, _ = register(res.images[0], data.object.astype(complex))
    covered = np.abs(aligned_truth)[final].sum() / np.abs(aligned_truth).sum()
    initial_area = centered_ball(truth.shape, 30).sum()
    assert covered > 0.98
    assert final.sum() < 1.6 * truth.sum() < initial_area
    assert aligned_error(res.images[0], data.object) < 0.1


def test_explicit_mask_equals_negative_values(noisy_2d):
    hidden = noisy_2d.intensity.copy()
    hidden[noisy_2d.mask] = 123.0  # garbage under the mask must be ignored
    steps = [Step("hio", 30, 0.9), Step("er", 10)]
    a = phase(noisy_2d.intensity, support=18, algorithms=steps, seed=5)
    b = phase(hidden, support=18, algorithms=steps, seed=5, mask=noisy_2d.mask)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    np.testing.assert_allclose(a.images, b.images, atol=1e-6 * np.abs(a.images).max())


def test_er_error_never_increases(pattern_2d):
    res = phase(pattern_2d.intensity, support=18, algorithms=[Step("er", 60)], seed=3)
    errors = res.errors[0]
    assert np.all(np.diff(errors) <= 1e-4 * errors[:-1])
    assert errors[-1] < errors[0]


def test_result_shapes_order_and_reproducibility(pattern_2d):
    steps = [Step("hio", 20, 0.9, 0.5), Step("er", 5)]
    res = phase(pattern_2d.intensity, support=18, algorithms=steps, n_starts=5, n_best=3, seed=11)
    shape = pattern_2d.intensity.shape
    assert res.images.shape == res.supports.shape == (3, *shape)
    assert res.images.dtype == np.complex64
    assert res.average.shape == shape
    assert res.scores.shape == res.starts.shape == (5,)
    assert res.errors.shape == (5, 25)
    assert np.all(np.diff(res.scores) >= 0)
    assert sorted(res.starts) == list(range(5))
    assert res.prtf.shape == res.prtf_radius.shape == (24,)
    again = phase(pattern_2d.intensity, support=18, algorithms=steps, n_starts=5, n_best=3, seed=11)
    np.testing.assert_array_equal(res.scores, again.scores)


def test_first_image_is_centred(pattern_2d):
    res = phase(pattern_2d.intensity, support=18, algorithms=HIO_ER, seed=0)
    centre = circular_center(res.images[0])
    assert np.allclose(centre, [24, 24], atol=0.75)


def test_positivity_gives_real_nonnegative_images(pattern_2d):
    res = phase(pattern_2d.intensity, support=18, algorithms=[Step("hio", 50)], seed=0)
    assert np.all(res.images.imag == 0) and np.all(res.images.real >= 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"algorithms": []}, "algorithms is empty"),
        ({"constraint": "nonneg"}, "constraint"),
        ({"n_best": 3, "n_starts": 2}, "n_best"),
        ({"support": -1}, "diameter"),
        ({"support": np.zeros((4, 4), bool)}, "support shape"),
        ({"dtype": np.float32}, "dtype"),
        ({"constraint": "none", "real_fft": True}, "real_fft needs"),
    ],
)
def test_bad_arguments_raise(pattern_2d, kwargs, message):
    args = {"support": 18, "algorithms": [Step("er", 2)], **kwargs}
    with pytest.raises(ValueError, match=message):
        phase(pattern_2d.intensity, **args)


def test_all_unknown_or_empty_intensity_is_rejected():
    with pytest.raises(ValueError, match="every intensity pixel is unknown"):
        phase(-np.ones((8, 8)), support=4, algorithms=[Step("er", 1)])
    with pytest.raises(ValueError, match="nothing to phase"):
        phase(np.zeros((8, 8)), support=4, algorithms=[Step("er", 1)])


def test_fft_order_input_equals_centred_input(noisy_2d):
    steps = [Step("hio", 20, 0.9)]
    a = phase(noisy_2d.intensity, support=18, algorithms=steps, seed=2)
    b = phase(np.fft.ifftshift(noisy_2d.intensity), support=18, algorithms=steps, seed=2, centered=False)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


@pytest.mark.parametrize(
    "spec, message",
    [
        (("dm", 10), "unknown algorithm"),
        (("hio", 0), "iterations"),
        (("hio", 10, 1.5), "beta_init"),
    ],
)
def test_bad_steps_raise(spec, message):
    with pytest.raises(ValueError, match=message):
        Step(*spec)


def test_step_ramps_beta_linearly():
    np.testing.assert_allclose(Step("hio", 5, 0.9, 0.5).betas(), [0.9, 0.8, 0.7, 0.6, 0.5])
    assert Step.coerce({"name": "er", "number_of_iterations": 3}) == Step("er", 3)


# --- the fused operators agree with the whole-array ones ----------------------------------


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("algo", ["er", "hio", "raar"])
def test_fused_operators_match_array_operators(dtype, mode, algo):
    pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    n = 4000
    f = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(dtype)
    f[:5] = 0
    real = np.float32 if dtype == np.complex64 else np.float64
    amp = rng.random(n).astype(real)
    amp[::7] = -1
    x = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(dtype)
    support = rng.random(n) < 0.4
    fused, plain = projections.FusedOps(), projections.ArrayOps(np)
    f1, f2 = f.copy(), f.copy()
    m1 = fused.fourier(f1, amp, amp >= 0)
    m2 = plain.fourier(f2, amp, amp >= 0)
    rtol = 1e-4 if dtype == np.complex64 else 1e-10
    np.testing.assert_allclose(f1, f2, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(m1, m2, rtol=rtol)
    known = amp >= 0
    assert m1 == pytest.approx(np.sum((np.abs(f[known]) - amp[known]) ** 2), rel=rtol)
    a, b, t = projections.update_coefficients(algo, 0.8)
    x1, y1, x2, y2 = x.copy(), f1.copy(), x.copy(), f1.copy()
    fused.update(x1, y1, support, a, b, t, mode)
    plain.update(x2, y2, support, a, b, t, mode)
    np.testing.assert_allclose(x1, x2, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(x1, y1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("algo", ["er", "hio", "raar"])
def test_fused_real_update_matches_array_update(dtype, positive, algo):
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, 3000)).astype(dtype)
    support = rng.random(3000) < 0.5
    a, b, t = projections.update_coefficients(algo, 0.7)
    x1, x2 = x.copy(), x.copy()
    projections.FusedOps().update_real(x1, y, support, a, b, t, positive)
    projections.ArrayOps(np).update_real(x2, y, support, a, b, t, positive)
    np.testing.assert_allclose(x1, x2, rtol=1e-6, atol=1e-6)
    ok = support & (y + t * (y - x) >= 0) if positive else support
    np.testing.assert_allclose(x1[ok], y[ok])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_start_spectrum_and_support_projection_match_array_ones(dtype):
    pytest.importorskip("numba")
    rng = np.random.default_rng(5)
    amp = rng.random((6, 7, 5)).astype(dtype)
    amp[::2, 1, :] = -1  # unknown: no amplitude in the starting spectrum
    phases = (rng.random(amp.shape) * 2 * np.pi).astype(dtype)
    cdtype = np.complex64 if dtype == np.float32 else np.complex128
    fused, plain = projections.FusedOps(), projections.ArrayOps(np)
    s1, s2 = fused.spectrum(amp, phases, cdtype), plain.spectrum(amp, phases, cdtype)
    assert s1.dtype == s2.dtype == cdtype and s1.shape == amp.shape
    np.testing.assert_allclose(s1, s2, rtol=1e-6, atol=1e-6)
    assert np.all(s1[amp < 0] == 0)
    np.testing.assert_allclose(np.abs(s1[amp >= 0]), amp[amp >= 0], rtol=1e-6)
    x = rng.normal(size=amp.shape).astype(dtype)
    support = rng.random(amp.shape) < 0.5
    for mode in (1, 2):
        x1, x2 = x.copy(), x.copy()
        fused.constrain(x1, support, mode)
        plain.constrain(x2, support, mode)
        np.testing.assert_array_equal(x1, x2)
        assert np.all(x1[~support] == 0) and (mode == 1 or np.all(x1 >= 0))


@pytest.mark.parametrize("shape", [(8, 6), (6, 5, 7), (4, 6, 8)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_real_fft_pair_inverts_and_equals_scipy_irfftn(shape, dtype):
    import scipy.fft

    x = np.random.default_rng(2).normal(size=shape).astype(dtype)
    half = projections.rfftn(x)
    assert half.shape == (*shape[:-1], shape[-1] // 2 + 1)
    expected = scipy.fft.irfftn(half, s=shape)
    back = projections.irfftn(half.copy(), shape)  # the in-place two-step inverse
    assert back.dtype == dtype and back.shape == shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(back, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(back, x, rtol=tol, atol=tol)


@pytest.mark.parametrize("private_kernels", [True, False])
@pytest.mark.parametrize("shape", [(8, 6), (6, 5, 7)])
def test_real_fft_pair_object_matches_the_functions_and_reuses_its_buffers(shape, private_kernels):
    rng = np.random.default_rng(4)
    pair = projections.RealFFT(shape, np.float32)
    if not private_kernels:  # the fallback a scipy without pypocketfft's out= would take
        pair._kernels = None
    else:
        assert pair._kernels is not None  # scipy here offers them
    for _ in range(2):
        x = rng.normal(size=shape).astype(np.float32)
        half = pair.forward(x)
        assert half.dtype == np.complex64 and half.shape == pair.half_shape
        np.testing.assert_allclose(half, projections.rfftn(x), rtol=1e-5, atol=1e-4)
        back = pair.inverse(half)
        assert back.dtype == np.float32 and back.shape == shape
        np.testing.assert_allclose(back, x, atol=1e-5)
    if private_kernels:
        assert pair.forward(x) is half and pair.inverse(half) is back


def test_friedel_half_averages_mates_and_keeps_one_sided_pixels():
    from beamhub.kernels.phasing.retrieval import _friedel_half

    amp = np.arange(1.0, 37.0).reshape(6, 6)
    amp[1, 2] = -1  # its mate (5, 4) is known: take that value
    amp[2, 3] = amp[4, 3] = -1  # both unknown: stays unknown
    half = _friedel_half(amp)
    assert half.shape == (6, 4)
    assert half[0, 1] == 0.5 * (amp[0, 1] + amp[0, 5])
    assert half[1, 2] == amp[5, 4] and half[2, 3] == -1 and half[0, 0] == amp[0, 0]


@pytest.mark.parametrize("real_fft", [True, False])
def test_array_operators_recover_the_object(pattern_2d, monkeypatch, real_fft):
    monkeypatch.setattr("beamhub.kernels.phasing.retrieval.ops_for", lambda xp: projections.ArrayOps(xp))
    res = phase(pattern_2d.intensity, support=18, algorithms=HIO_ER, n_starts=2, seed=0, real_fft=real_fft)
    assert res.info["ops"] == "ArrayOps"
    assert aligned_error(res.images[0], pattern_2d.object) < 0.01


def test_modulus_projection_sets_measured_amplitudes():
    rng = np.random.default_rng(1)
    f = (rng.normal(size=100) + 1j * rng.normal(size=100)).astype(np.complex64)
    amp = rng.random(100).astype(np.float32)
    amp[:10] = -1
    before = f.copy()
    for ops in (projections.ArrayOps(np), projections.ops_for(np)):
        g = before.copy()
        ops.fourier(g, amp, amp >= 0)
        np.testing.assert_allclose(np.abs(g[10:]), amp[10:], rtol=1e-5)
        np.testing.assert_allclose(np.angle(g[10:]), np.angle(before[10:]), atol=1e-5)
        np.testing.assert_array_equal(g[:10], before[:10])  # unknown pixels left free


# --- alignment and PRTF ----------------------------------------------------------------------


def test_register_undoes_shift_twin_and_phase():
    obj = random_object((12, 12), seed=9).astype(complex)
    box = np.zeros((32, 32), complex)
    box[10:22, 10:22] = obj * np.exp(0.3j * np.arange(12))[None, :]
    moved = np.roll(twin(box), (5, -7), axis=(0, 1)) * np.exp(1.1j)
    aligned, _, info = register(box, moved)
    assert info["twin"]
    np.testing.assert_allclose(aligned, box, atol=1e-5)
    assert aligned_error(moved, box) < 1e-5
    assert aligned_error(moved, box, allow_twin=False) > 0.3


def test_center_moves_object_to_the_middle():
    img = np.zeros((20, 20))
    img[0:3, 18:20] = 1.0  # wrapped across the corner
    img[0:3, 0:2] = 1.0
    (centred,) = center(img)
    assert np.allclose(circular_center(centred), (10.5, 10.0), atol=0.6)


def test_prtf_is_one_for_identical_and_low_for_random_phases():
    rng = np.random.default_rng(2)
    img = rng.random((32, 32))
    same, radius = prtf(np.stack([img, img, img]))
    assert radius[0] == 0 and np.allclose(same, 1.0)
    spectra = np.abs(np.fft.fftn(img)) * np.exp(2j * np.pi * rng.random((16, 32, 32)))
    noisy, _ = prtf(np.fft.ifftn(spectra, axes=(1, 2)))
    assert np.nanmean(noisy[2:]) < 0.4


# --- GPU -------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="needs cupy and a GPU")
def test_cupy_matches_numpy(pattern_2d):
    steps = [Step("hio", 40, 0.9), Step("er", 10)]
    cpu = phase(pattern_2d.intensity, support=18, algorithms=steps, n_starts=2, seed=4, backend_name="numpy")
    gpu = phase(pattern_2d.intensity, support=18, algorithms=steps, n_starts=2, seed=4, backend_name="cupy")
    assert gpu.info["backend"] == "cupy"
    np.testing.assert_allclose(gpu.scores, cpu.scores, rtol=1e-2)
    assert aligned_error(gpu.images[0], cpu.images[0]) < 1e-2


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="needs cupy and a GPU")
def test_cupy_recovers_3d_object(pattern_3d):
    res = phase(pattern_3d.intensity, support=10, algorithms=HIO_ER, n_starts=2, seed=0, backend_name="cupy")
    assert isinstance(res.images, np.ndarray)
    assert aligned_error(res.images[0], pattern_3d.object) < 0.05


def test_callback_watches_the_run_live():
    from beamhub.kernels.phasing import Step, phase
    from beamhub.kernels.sim.cdi import random_object, simulate_cdi

    data = simulate_cdi(random_object((12, 12), seed=1), oversampling=4, seed=2)
    seen = []
    phase(
        data.intensity,
        support=16,
        algorithms=[Step("hio", 30), Step("er", 10)],
        n_starts=2,
        seed=0,
        callback=lambda it, image, figures: seen.append((it, image.shape, figures)),
        callback_every=10,
    )
    assert [it for it, _, _ in seen] == [9, 19, 29, 39, 49, 59, 69, 79]
    assert all(shape == data.intensity.shape for _, shape, _ in seen)
    assert [f["start"] for _, _, f in seen] == [0] * 4 + [1] * 4
    assert seen[-1][2]["algorithm"] == "er" and seen[0][2]["algorithm"] == "hio"
    errors = [f["fourier_error"] for _, _, f in seen[:4]]
    assert errors[-1] < errors[0]  # the run converges while we watch
