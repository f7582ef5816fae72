"""VolumeViewer and Monitor, Python side: what the widgets hold after a user moves something."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from beamhub.kernels import backend
from beamhub.kernels.view import Monitor, VolumeViewer
from beamhub.kernels.view import render as pictures


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.fixture(scope="module")
def ramp():
    """A volume whose value tells where it is: v[z, y, x] = 100 z + 10 y + x."""
    z, y, x = np.meshgrid(np.arange(12), np.arange(10), np.arange(8), indexing="ij")
    return (100 * z + 10 * y + x).astype(np.float32)


# -- render: the pure steps -----------------------------------------------------------------

def test_contrast_limits_are_the_percentiles():
    values = np.arange(1001, dtype=float)
    assert pictures.contrast_limits(values, (1, 99)) == pytest.approx((10.0, 990.0))
    lo, hi = pictures.contrast_limits(np.full(50, 3.0))
    assert lo < 3.0 < hi  # flat data still gets a window
    with pytest.raises(ValueError, match="percentiles"):
        pictures.contrast_limits(values, (50, 10))


def test_log_scale_clips_at_floor():
    data = np.array([[-1.0, 0.0], [10.0, 1000.0]])
    out = pictures.scaled(data, "log", floor=0.1)
    np.testing.assert_allclose(out, [[-1, -1], [1, 3]], atol=1e-6)
    assert pictures.log_floor(np.array([0.0, -2.0])) == 1.0
    with pytest.raises(ValueError, match="scale"):
        pictures.scaled(data, "sqrt")


def test_colorize_maps_limits_to_the_ends_of_the_colour_map():
    import matplotlib

    img = np.array([[0.0, 5.0, 10.0, 20.0]])
    rgb = pictures.colorize(img, 0.0, 10.0, "viridis")
    cmap = matplotlib.colormaps["viridis"]
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], cmap(0.0, bytes=True)[:3])
    np.testing.assert_array_equal(rgb[0, 2], cmap(1.0, bytes=True)[:3])
    np.testing.assert_array_equal(rgb[0, 3], rgb[0, 2])  # clipped above vmax
    with pytest.raises(ValueError, match="colour map"):
        pictures.colorize(img, 0, 1, "no-such-map")


def test_downsample_is_a_block_mean(ramp):
    small, factors = pictures.downsample(ramp, 4)
    assert factors == (3, 3, 2)
    assert small.shape == (4, 3, 4)
    expected = ramp[:12, :9, :8].reshape(4, 3, 3, 3, 4, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(small, expected, rtol=1e-6)
    same, ones = pictures.downsample(ramp, 64)
    assert ones == (1, 1, 1) and np.array_equal(same, ramp)


def test_png_round_trip_and_upscale():
    rgb = np.random.default_rng(1).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    big = pictures.upscale(rgb, 3)
    assert big.shape == (15, 21, 3)
    np.testing.assert_array_equal(big[::3, ::3], rgb)
    np.testing.assert_array_equal(decode(pictures.png_bytes(big)), big)


# -- VolumeViewer ---------------------------------------------------------------------------

def expected_slice(volume, viewer, axis):
    idx = [slice(None)] * 3
    idx[axis] = viewer.index[axis]
    shown = pictures.scaled(volume[tuple(idx)], viewer.scale.value, viewer._floor)
    rgb = pictures.colorize(shown, *viewer.limits, cmap=viewer.colormap.value)
    return pictures.upscale(rgb, viewer._zoom)


def test_viewer_starts_in_the_middle_and_draws_three_slices(ramp):
    viewer = VolumeViewer(ramp, render=None, crosshair=False, panel_size=64)
    assert viewer.index == (6, 5, 4)
    assert viewer._zoom == 64 // 12
    for axis in range(3):
        np.testing.assert_array_equal(decode(viewer.images[axis].value),
                                      expected_slice(ramp, viewer, axis))
    np.testing.assert_array_equal(viewer.slice_data("y"), ramp[:, 5, :])


def test_moving_a_slider_redraws_that_slice(ramp):
    viewer = VolumeViewer(ramp, render=None, crosshair=False)
    before = [img.value for img in viewer.images]
    viewer.sliders[0].value = 2
    assert viewer.images[0].value != before[0]
    np.testing.assert_array_equal(viewer.slice_data(0), ramp[2])
    np.testing.assert_array_equal(decode(viewer.images[0].value), expected_slice(ramp, viewer, 0))
    # without a crosshair the other slices do not change
    assert viewer.images[1].value == before[1] and viewer.images[2].value == before[2]
    assert "z=2" in viewer.info.value


def test_crosshair_marks_where_the_other_slices_cut(ramp):
    viewer = VolumeViewer(ramp, render=None, panel_size=1)
    viewer.set_index(y=3, x=6)
    rgb = decode(viewer.images[0].value)  # the z slice: rows are y, columns x
    np.testing.assert_array_equal(rgb[3, :], np.tile([255, 64, 64], (8, 1)))
    np.testing.assert_array_equal(rgb[:, 6], np.tile([255, 64, 64], (10, 1)))
    plain = expected_slice(ramp, viewer, 0)
    np.testing.assert_array_equal(rgb[:3, :6], plain[:3, :6])
    # the x slice moved its crosshair too
    assert decode(viewer.images[2].value)[:, 3].tolist() == [[255, 64, 64]] * 12
    # enlarged 6x: a 1-pixel line through the middle of the voxel
    big = VolumeViewer(ramp, render=None, panel_size=72)
    assert big._zoom == 6
    big.set_index(y=3, x=6)
    rgb = decode(big.images[0].value)
    red = np.all(rgb == [255, 64, 64], axis=2)
    assert red[:, 0].tolist() == [r == 3 * 6 + 2 for r in range(60)]
    assert red[0, :].tolist() == [c == 6 * 6 + 2 for c in range(48)]


def test_contrast_scale_and_colour_map_controls(ramp):
    viewer = VolumeViewer(ramp + 1, render=None, crosshair=False)
    lin = viewer.limits
    viewer.contrast.value = (10.0, 90.0)
    sample = np.sort((ramp + 1).ravel())
    assert viewer.limits == pytest.approx(tuple(np.percentile(sample, [10, 90])), rel=1e-6)
    assert viewer.limits[0] > lin[0] and viewer.limits[1] < lin[1]
    viewer.scale.value = "log"
    assert viewer.limits == pytest.approx(tuple(np.percentile(np.log10(sample), [10, 90])), rel=1e-5)
    gray = viewer.images[0].value
    viewer.colormap.value = "viridis"
    assert viewer.images[0].value != gray
    rgb = decode(viewer.images[0].value)
    np.testing.assert_array_equal(rgb, expected_slice(ramp + 1, viewer, 0))
    assert rgb[..., 0].tolist() != rgb[..., 1].tolist()  # no longer grey


def test_complex_volume_shows_its_modulus():
    rng = np.random.default_rng(3)
    vol = rng.normal(size=(6, 6, 6)) + 1j * rng.normal(size=(6, 6, 6))
    viewer = VolumeViewer(vol, render=None)
    np.testing.assert_allclose(viewer.slice_data(0), np.abs(vol[3]))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4)), "3-D"),
    ([[1, 2]], "3-D"),
])
def test_viewer_refuses_what_is_not_a_volume(bad, message):
    with pytest.raises(ValueError, match=message):
        VolumeViewer(bad)


def test_viewer_refuses_bad_options(ramp):
    with pytest.raises(ValueError, match="scale"):
        VolumeViewer(ramp, scale="sqrt")
    with pytest.raises(ValueError, match="render"):
        VolumeViewer(ramp, render="points")
    with pytest.raises(ValueError, match="percentiles"):
        VolumeViewer(ramp, percentiles=(90, 10))
    with pytest.raises(ValueError, match="colour map"):
        VolumeViewer(ramp, cmap="no-such-map")


def test_3d_view_is_downsampled_and_follows_its_controls():
    pytest.importorskip("k3d")
    import matplotlib

    from beamhub.kernels.view.scene3d import k3d_color_map

    vol = np.zeros((70, 40, 40), dtype=np.float32)
    vol[20:50, 10:30, 10:30] = 1.0
    viewer = VolumeViewer(vol, max_3d=32)
    scene = viewer.scene
    assert type(scene.plot).__module__.startswith("k3d")
    # binned 3, 2, 2 to (23, 20, 20), then cropped to the cube plus 2 voxels
    assert scene.isosurface.scalar_field.shape == (15, 14, 14)
    assert scene.isosurface.visible and not scene.volume.visible
    viewer.threshold.value = 0.25
    assert scene.isosurface.level == pytest.approx(0.25)
    assert scene.plot.colorbar_object_id == 0  # no colour bar beside an isosurface
    viewer.render_mode.value = "volume"
    assert scene.volume.visible and not scene.isosurface.visible
    assert scene.plot.colorbar_object_id == scene.volume.id > 0
    assert viewer.threshold.disabled
    viewer.colormap.value = "magma"
    np.testing.assert_allclose(scene.volume.color_map, k3d_color_map("magma"))
    assert k3d_color_map("magma")[-4:] == pytest.approx([1.0, *matplotlib.colormaps["magma"](1.0)[:3]])


def test_without_k3d_the_viewer_keeps_its_slices_and_says_what_to_install(ramp, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "k3d", None)  # makes `import k3d` raise ImportError
    viewer = VolumeViewer(ramp)
    assert viewer.scene is None and viewer.threshold is None
    assert "pip install k3d" in viewer.children[-1].value
    viewer.sliders[0].value = 1
    np.testing.assert_array_equal(viewer.slice_data(0), ramp[1])


def test_crop_to_content_keeps_every_voxel_above_the_floor():
    vol = np.zeros((20, 30, 40))
    vol[5, 10:12, 7] = 1.0
    vol[9, 11, 30] = 0.5
    box, origin = pictures.crop_to_content(vol, 0.1, margin=2)
    assert origin == (3, 8, 5) and box.shape == (9, 6, 28)
    assert box.sum() == vol.sum()
    same, zero = pictures.crop_to_content(vol, 5.0)
    assert zero == (0, 0, 0) and same.shape == vol.shape


def test_3d_view_frames_a_small_object_in_a_big_box():
    pytest.importorskip("k3d")
    vol = np.zeros((48, 48, 48), dtype=np.float32)
    vol[20:28, 22:30, 18:26] = 1.0
    viewer = VolumeViewer(vol, max_3d=24)  # binned 2x: the cube spans binned 10-14, 11-15, 9-13
    iso = viewer.scene.isosurface
    assert iso.scalar_field.shape == (8, 8, 8)
    # bounds in full-volume voxels: x, y, z ranges of the cropped box
    from k3d.helpers import get_bounding_box

    np.testing.assert_allclose(np.ravel(get_bounding_box(iso.model_matrix)),
                               [2 * 7, 2 * 15, 2 * 9, 2 * 17, 2 * 8, 2 * 16])
    assert viewer.threshold.min == pytest.approx(0.02)
    assert "around the content" in viewer.children[-1].children[1].value


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="no usable GPU (cupy)")
def test_viewer_takes_cupy_arrays_and_copies_only_slices(ramp):
    import cupy

    vol = cupy.asarray(ramp)
    viewer = VolumeViewer(vol, crosshair=False)
    assert type(viewer._volume).__module__.startswith("cupy")
    viewer.sliders[2].value = 1
    np.testing.assert_array_equal(viewer.slice_data(2), ramp[:, :, 1])
    host = VolumeViewer(ramp, crosshair=False)
    host.sliders[2].value = 1
    assert viewer.images[2].value == host.images[2].value
    small, _ = pictures.downsample(vol, 4)
    assert isinstance(small, np.ndarray)
    np.testing.assert_allclose(small, pictures.downsample(ramp, 4)[0], rtol=1e-6)


# -- Monitor --------------------------------------------------------------------------------

def test_monitor_records_every_call_and_draws_in_place():
    monitor = Monitor(min_interval=0)
    model = np.zeros((8, 9, 10))
    for it in range(1, 5):
        model[4, 4, 5] = it  # the run changes its model in place
        monitor(it, model, {"rms_change": 10.0 ** -it, "mutual_info": 0.5 * it, "note": "text"})
    assert monitor.iterations == [1, 2, 3, 4]
    assert monitor.history["rms_change"] == pytest.approx([0.1, 0.01, 0.001, 0.0001])
    assert "note" not in monitor.history
    assert monitor.draws == 4
    assert "iteration <b>4</b>" in monitor.status.value and "mutual_info = 2" in monitor.status.value
    assert [decode(img.value).shape[:2] for img in monitor.slices] == [(171, 190), (152, 190), (168, 189)]
    assert decode(monitor.plot.value).shape[1] > 300  # two plots side by side
    assert monitor._log_axis("rms_change", np.asarray(monitor.history["rms_change"]))
    assert not monitor._log_axis("mutual_info", np.asarray(monitor.history["mutual_info"]))


def test_monitor_throttles_drawing_but_keeps_the_latest_state():
    monitor = Monitor(min_interval=3600)
    monitor(0, np.ones((4, 4, 4)), {"error": 1.0})
    first = monitor.slices[0].value
    monitor(1, np.arange(64.0).reshape(4, 4, 4), {"error": 0.5})
    assert monitor.draws == 1 and monitor.slices[0].value == first  # not redrawn yet
    assert monitor.history["error"] == [1.0, 0.5]
    monitor.refresh()
    assert monitor.draws == 2 and monitor.slices[0].value != first
    assert "error = 0.5" in monitor.status.value
    monitor.refresh()  # nothing new: no redraw
    assert monitor.draws == 2


def test_monitor_pads_figures_that_come_and_go_and_shows_2d_models():
    monitor = Monitor(min_interval=0)
    monitor(0, np.ones((6, 6)), {"a": 1.0})
    monitor(1, np.ones((6, 6)) * 2, {"b": 2.0})
    assert monitor.history["a"][0] == 1.0 and math.isnan(monitor.history["a"][1])
    assert math.isnan(monitor.history["b"][0]) and monitor.history["b"][1] == 2.0
    assert monitor.slices[0].layout.display is None
    assert monitor.slices[1].layout.display == "none" and monitor.slices[2].layout.display == "none"
    with pytest.raises(ValueError, match="2-D or 3-D"):
        monitor(2, np.ones(5), {})


def test_monitor_reads_a_dataclass_of_figures_like_emc_reports():
    from dataclasses import dataclass, field

    @dataclass
    class Figures:  # the shape of beamhub.kernels.emc.IterationFigures
        iteration: int
        rms_change: float
        info_rate: float
        per_frame: dict = field(default_factory=dict)

    monitor = Monitor(min_interval=0)
    for it in (1, 2):
        monitor(it, np.ones((5, 5, 5)), Figures(it, 0.1 / it, 0.2 * it, {"x": np.arange(3)}))
    assert set(monitor.history) == {"rms_change", "info_rate"}
    assert monitor.history["info_rate"] == pytest.approx([0.2, 0.4])
    only = Monitor(min_interval=0, plots=["info_rate"])
    only(1, None, Figures(1, 0.1, 0.2))
    wide, narrow = decode(monitor.plot.value), decode(only.plot.value)
    assert narrow.shape[1] < wide.shape[1] / 1.5  # one plot instead of two
    assert set(only.history) == {"rms_change", "info_rate"}  # still recorded
    with pytest.raises(TypeError, match="mapping or a dataclass"):
        monitor(3, None, [1.0, 2.0])


def test_monitor_recentres_fft_order_models_like_fftshift():
    rng = np.random.default_rng(5)
    model = rng.random((6, 7, 8))
    centred = np.fft.fftshift(model)
    for shape_model, reference in ((model, centred), (model[0], np.fft.fftshift(model[0]))):
        shifted, plain = Monitor(min_interval=0, fftshift=True), Monitor(min_interval=0)
        shifted(0, shape_model, {})
        plain(0, reference, {})
        assert [img.value for img in shifted.slices if img.value] == \
               [img.value for img in plain.slices if img.value]


def test_monitor_refuses_bad_options():
    with pytest.raises(ValueError, match="scale"):
        Monitor(scale="cubic")
    with pytest.raises(ValueError, match="min_interval"):
        Monitor(min_interval=-1)
