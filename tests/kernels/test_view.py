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
        np.testing.assert_array_equal(decode(viewer.images[axis].value), expected_slice(ramp, viewer, axis))
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


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 4)), "3-D"),
        ([[1, 2]], "3-D"),
    ],
)
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

    np.testing.assert_allclose(
        np.ravel(get_bounding_box(iso.model_matrix)), [2 * 7, 2 * 15, 2 * 9, 2 * 17, 2 * 8, 2 * 16]
    )
    assert viewer.threshold.min == pytest.approx(0.02)
    assert "around the content" in viewer.children[-1].children[1].value


def test_3d_camera_frames_the_object_projected_box_fills_the_view_no_browser():
    """The camera the widget gets, checked by projection (the browser screenshot of the same
    framing is tests/e2e/test_browser_viewer_framing.py): the object's projected bounding box
    spans 80-90 % of the view's height, where k3d's own auto-fit gave under 40 %."""
    pytest.importorskip("k3d")
    from beamhub.kernels.view.scene3d import CAMERA_FOV, FILL, content_points, projected_extent

    z, y, x = np.mgrid[:64, :64, :64]
    ball = (((x - 40) ** 2 + (y - 24) ** 2 + (z - 30) ** 2) < 8**2).astype(np.float32)
    viewer = VolumeViewer(ball, height_3d=400, width_3d=600)
    scene = viewer.scene
    assert scene.plot.camera_auto_fit is False and scene.plot.camera == pytest.approx(scene.camera)
    assert scene.plot.camera_fov == CAMERA_FOV and scene.plot.layout.width == "600px"
    iso = scene.isosurface
    bounds = np.ravel(iso.model_matrix)[[3, 7, 11]]  # the box's centre, for the reference below
    points = content_points(iso.scalar_field, iso.level, _bounds(iso))
    width, height = projected_extent(points, scene.camera, aspect=1.5)
    assert 0.8 <= height <= FILL + 1e-9 and width <= FILL, (width, height)
    # the camera aims at the ball, off-centre in its box as it is
    assert scene.camera[3:6] == pytest.approx([40.5, 24.5, 30.5], abs=0.6)
    # k3d's auto-fit: 1.5 x the bounding sphere's radius / sin(fov / 2) from the centre
    corners = content_points(iso.scalar_field, -np.inf, _bounds(iso))
    radius = np.linalg.norm(corners.max(axis=0) - corners.min(axis=0)) / 2
    back = np.asarray(scene.camera[:3]) - np.asarray(scene.camera[3:6])
    auto = [
        *(bounds + 1.5 * radius / np.sin(np.radians(CAMERA_FOV / 2)) * back / np.linalg.norm(back)),
        *bounds,
        *scene.camera[6:],
    ]
    assert projected_extent(points, auto, aspect=1.5)[1] < 0.4


def test_3d_camera_keeps_all_of_the_isosurface_in_view_when_the_level_sits_on_a_plateau():
    """A ball of 1 with a denser ball of 2 inside, threshold 1 (half-way): the surface drawn is
    the big ball's (marching cubes counts a voxel at the level as inside), so every voxel at or
    above the level must project inside the view, not just the denser core."""
    pytest.importorskip("k3d")
    from beamhub.kernels.view.scene3d import FILL

    z, y, x = np.mgrid[-1:1:48j, -1:1:40j, -1:1:40j]
    vol = (x**2 + y**2 + z**2 < 0.6).astype(np.float32)
    vol += (x - 0.3) ** 2 + (y + 0.2) ** 2 + (z - 0.2) ** 2 < 0.05
    viewer = VolumeViewer(vol, max_3d=32, height_3d=320)
    iso = viewer.scene.isosurface
    assert iso.level == pytest.approx(1.0)
    field, bounds = iso.scalar_field, _bounds(iso)
    voxels = np.argwhere(field >= iso.level)[:, ::-1].astype(float)  # every one, not only the surface
    step = (np.array(bounds[1::2]) - np.array(bounds[0::2])) / np.array(field.shape[::-1])
    corners = np.concatenate(
        [
            np.array(bounds[0::2]) + (voxels + d) * step
            for d in np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).T.reshape(-1, 3)
        ]
    )
    position, target = np.array(viewer.scene.camera[:3]), np.array(viewer.scene.camera[3:6])
    back = (position - target) / np.linalg.norm(position - target)
    up = np.array(viewer.scene.camera[6:])
    right = np.cross(-back, up)
    rel = corners - position
    depth = -(rel @ back)
    t = np.tan(np.radians(30))
    aspect = 600 / 320
    assert np.abs(rel @ up / (depth * t)).max() <= FILL + 1e-9
    assert np.abs(rel @ right / (depth * t * aspect)).max() <= FILL + 1e-9
    assert np.abs(rel @ up / (depth * t)).max() > 0.8  # and framed, not lost in the canvas


def _bounds(obj) -> list[float]:
    from k3d.helpers import get_bounding_box

    return list(np.ravel(get_bounding_box(obj.model_matrix)))


def test_frame_camera_puts_the_farthest_point_at_the_fill_on_any_canvas():
    from beamhub.kernels.view.scene3d import frame_camera, projected_extent

    points = np.random.default_rng(3).normal(size=(200, 3)) * [5.0, 1.0, 2.0] + [10, -4, 7]
    for aspect in (0.5, 1.0, 2.5):
        camera = frame_camera(points, aspect=aspect, fill=0.8, direction=(1, -1, 0.5))
        width, height = projected_extent(points, camera, aspect=aspect)
        assert max(width, height) <= 0.8 + 1e-9
        # close: a point touches 80 % on one side; the near side looks larger in perspective,
        # so the picture is not centred on the box's centre and the span is a little less
        assert max(width, height) > 0.5
    with pytest.raises(ValueError, match="fill"):
        frame_camera(points, fill=1.5)


def test_volume_rendering_and_its_colour_bar_follow_the_log_scale_with_units():
    pytest.importorskip("k3d")
    rng = np.random.default_rng(0)
    vol = (10.0 ** rng.uniform(0, 6, (16, 16, 16))).astype(np.float32)  # six decades of photons
    viewer = VolumeViewer(vol, scale="log", unit="photons", render="volume")
    scene = viewer.scene
    floor = pictures.log_floor(pictures.sample(vol))
    np.testing.assert_allclose(scene.volume.volume, np.log10(np.maximum(vol, floor)), rtol=1e-5)
    assert scene.volume.color_range == pytest.approx(viewer.limits)  # what the slices show
    assert viewer.limits[1] < 7  # log10 units
    assert (
        "log10(photons)" in viewer.info.value
        and "colour bar of the volume rendering in log10(photons)" in viewer.legend.value
        and "threshold in photons" in viewer.legend.value
    )
    assert scene.isosurface.scalar_field.max() == pytest.approx(vol.max())  # the threshold stays linear
    viewer.scale.value = "linear"
    np.testing.assert_allclose(scene.volume.volume, vol)
    assert scene.volume.color_range == pytest.approx(viewer.limits) and viewer.limits[1] > 1e5
    assert "colour bar of the volume rendering in photons" in viewer.legend.value
    assert VolumeViewer(vol, render=None).info.value.endswith("a.u.</span>")  # no unit given


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
        monitor(it, model, {"rms_change": 10.0**-it, "mutual_info": 0.5 * it, "note": "text"})
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
        assert [img.value for img in shifted.slices if img.value] == [img.value for img in plain.slices if img.value]


def test_monitor_refuses_bad_options():
    with pytest.raises(ValueError, match="scale"):
        Monitor(scale="cubic")
    with pytest.raises(ValueError, match="min_interval"):
        Monitor(min_interval=-1)


def test_monitor_plots_each_random_start_as_its_own_curve():
    """phase()'s callback counts iterations over all starts and reports ``start``: one curve per
    start, each against its own iterations, so the starts lie on top of each other."""
    monitor = Monitor(min_interval=0)
    total = 30
    for start in range(3):
        for it in range(9, total, 10):
            monitor(
                start * total + it,
                np.ones((4, 4, 4)),
                {"start": start, "fourier_error": 0.1 * (start + 1) / (it + 1), "algorithm": "hio"},
            )
    fig = monitor.figure()
    assert [ax.get_title() for ax in fig.axes] == ["fourier_error (relative)"]  # start itself: no plot
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["start 0", "start 1", "start 2"]
    for k, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_xdata(), [9, 19, 29])
        np.testing.assert_allclose(line.get_ydata(), [0.1 * (k + 1) / n for n in (10, 20, 30)])
    assert fig.axes[0].get_xlabel() == "iteration of each start"
    single = Monitor(min_interval=0, group=None)
    single(0, None, {"start": 0, "fourier_error": 1.0})
    single(1, None, {"start": 1, "fourier_error": 0.5})
    assert len(single.figure().axes) == 2 and len(single.figure().axes[1].get_lines()) == 1


def test_monitor_figures_carry_their_units_emc_time_in_seconds():
    from beamhub.kernels.emc import IterationFigures

    monitor = Monitor(min_interval=0)
    for it in (1, 2):
        monitor(
            it,
            None,
            IterationFigures(
                iteration=it,
                time=0.25 * it,
                rms_change=0.1 / it,
                info_rate=0.3,
                likelihood=-2.0,
                num_rot=1380,
                beta=0.2,
            ),
        )
    titles = [ax.get_title() for ax in monitor.figure().axes]
    assert "time (s)" in titles and "rms_change (photons/voxel)" in titles and "info_rate (nats)" in titles
    assert "likelihood (nats/frame)" in titles and "beta (dimensionless)" in titles
    assert "time = 0.5 s" in monitor.status.value
    custom = Monitor(min_interval=0, units={"width": "mm"})
    custom(0, None, {"width": 2.0})
    assert custom.figure().axes[0].get_title() == "width (mm)" and "width = 2 mm" in custom.status.value
    # the model's slices say what they are in
    assert "in log10(photons/voxel)" in Monitor(scale="log", model_unit="photons/voxel").caption.value
    assert "in a.u." in Monitor().caption.value
