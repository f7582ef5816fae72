"""``VolumeViewer``: three orthogonal slices with sliders, contrast, colour map, and a 3-D view."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from beamhub.kernels import backend
from beamhub.kernels.view import render as pictures
from beamhub.kernels.view.scene3d import RENDER_MODES, Scene

__all__ = ["AXES", "CMAPS", "VolumeViewer"]

#: Axis names, in array order: a volume is ``(z, y, x)``; tomopy's ``(rows, N, N)``.
AXES = ("z", "y", "x")

#: Colour maps offered in the menu (any matplotlib name is accepted as ``cmap``).
CMAPS = ("gray", "viridis", "magma", "inferno", "cividis", "twilight", "RdBu_r")

#: Crosshair colour on the slices (RGB), marking where the other two slices cut.
CROSSHAIR = np.array([255, 64, 64], dtype=np.uint8)


class VolumeViewer(widgets.VBox):
    """Look at a 3-D volume: three orthogonal slices and a WebGL 3-D view.

    The slices are drawn at full resolution from the volume where it lives
    (numpy in memory, cupy on the GPU: only the slice shown is copied to the
    host), coloured in the kernel and sent as PNG.  The 3-D view (k3d, an
    isosurface with a threshold slider or a volume rendering) gets a
    block-averaged copy no longer than ``max_3d`` voxels per axis, so a
    2048³ reconstruction does not travel to the browser.

    Parameters
    ----------
    volume : (Z, Y, X) numpy or cupy array
        Real or complex (its modulus is shown).  Tomographic reconstructions
        are ``(rows, N, N)``; phasing results are centred boxes.
    cmap : str
        matplotlib colour map of the slices and the volume rendering.
    percentiles : (float, float)
        Contrast: the display range runs from the lower to the upper
        percentile of the values (on the chosen scale), 0-100.
    scale : {"linear", "log"}
        Intensity scale; "log" shows ``log10`` with values below the 0.1th
        percentile of the positive values clipped there (diffraction volumes).
        The volume rendering and its colour bar follow the same choice.
    unit : str
        Unit of the values ("photons", "1/pixel", ...), shown with the display
        range, the threshold and the colour bar; "a.u." (arbitrary units) when
        not given.
    index : (int, int, int), optional
        Starting slice on each axis; default the middle.
    render : {"isosurface", "volume"} or None
        What the 3-D view shows first; None leaves the 3-D view out.
    level : float, optional
        Starting isosurface threshold in data units; default half-way between
        the 1st and 99.5th percentiles.
    max_3d : int
        Longest axis of the volume sent to the 3-D view, voxels.  The 3-D
        copy is also cropped to the box holding every voxel above 2 % of its
        range (plus 2 voxels), so an object in a mostly empty box fills the view.
    panel_size : int
        Slices smaller than this many pixels are enlarged by an integer
        factor (sharp pixels) to about this size.
    crosshair : bool
        Mark on each slice where the other two cut it.
    height_3d : int
        Height of the 3-D view, CSS pixels.
    width_3d : int or None
        Width of the 3-D view, CSS pixels (the camera frames the object for this
        shape).  None takes the cell's whole width and frames for a square.

    Attributes
    ----------
    sliders : tuple of 3 ipywidgets.IntSlider
        Slice index on z, y, x.
    images : tuple of 3 ipywidgets.Image
        The rendered slices (PNG), in the same order.
    contrast : ipywidgets.FloatRangeSlider
        Percentiles of the display range.
    colormap : ipywidgets.Dropdown
    scale : ipywidgets.ToggleButtons
    threshold : ipywidgets.FloatSlider or None
        Isosurface level, data units.
    render_mode : ipywidgets.ToggleButtons or None
    legend : ipywidgets.HTML or None
        What the 3-D view's threshold and colour bar are in (scale and unit).
    scene : Scene or None
        The k3d scene (``scene.plot`` is the k3d widget).

    Examples
    --------
    >>> from beamhub.kernels.view import VolumeViewer
    >>> viewer = VolumeViewer(rec, cmap="gray")     # doctest: +SKIP
    >>> viewer                                       # doctest: +SKIP
    >>> viewer.set_index(z=10)                       # doctest: +SKIP
    """

    def __init__(
        self,
        volume,
        *,
        cmap: str = "gray",
        percentiles=(0.5, 99.9),
        scale: str = "linear",
        unit: str = "a.u.",
        index=None,
        render: str | None = "isosurface",
        level: float | None = None,
        max_3d: int = 64,
        panel_size: int = 256,
        crosshair: bool = True,
        height_3d: int = 400,
        width_3d: int | None = 600,
    ):
        if getattr(volume, "ndim", None) != 3:
            shape = getattr(volume, "shape", None)
            raise ValueError(f"VolumeViewer needs a 3-D array (z, y, x), got shape {shape}")
        if min(volume.shape) < 1:
            raise ValueError(f"VolumeViewer got an empty volume of shape {volume.shape}")
        if scale not in pictures.SCALES:
            raise ValueError(f"scale must be one of {', '.join(pictures.SCALES)}, got {scale!r}")
        if render is not None and render not in RENDER_MODES:
            raise ValueError(f"render must be one of {', '.join(RENDER_MODES)} or None, got {render!r}")
        pictures.contrast_limits(np.zeros(1), percentiles)  # validates the pair
        pictures.colorize(np.zeros((1, 1)), 0.0, 1.0, cmap)  # validates the colour map name
        self._volume = _real(volume)
        self._sample = pictures.sample(self._volume)
        self._floor = pictures.log_floor(self._sample)
        self._crosshair = bool(crosshair)
        self.unit = str(unit) or "a.u."
        self._zoom = max(1, int(panel_size) // max(volume.shape))
        self._rgb: list[np.ndarray | None] = [None, None, None]
        self._limits = (0.0, 1.0)

        start = index if index is not None else tuple(n // 2 for n in volume.shape)
        if len(start) != 3:
            raise ValueError(f"index must give one slice per axis (z, y, x), got {index!r}")
        widths = (volume.shape[2], volume.shape[2], volume.shape[1])  # of the z, y, x panels
        self.sliders = tuple(
            widgets.IntSlider(
                value=int(np.clip(i, 0, n - 1)),
                min=0,
                max=n - 1,
                description=name,
                continuous_update=True,
                style={"description_width": "1.2em"},
                layout=widgets.Layout(width=f"{max(160, w * self._zoom)}px"),
            )
            for name, n, i, w in zip(AXES, volume.shape, start, widths)
        )
        self.images = tuple(widgets.Image(format="png") for _ in AXES)
        for img, name in zip(self.images, AXES):
            img.add_class(f"beamhub-slice-{name}")
        options = list(CMAPS) if cmap in CMAPS else [cmap, *CMAPS]
        self.colormap = widgets.Dropdown(options=options, value=cmap, description="colour map")
        self.contrast = widgets.FloatRangeSlider(
            value=tuple(float(p) for p in percentiles),
            min=0.0,
            max=100.0,
            step=0.1,
            description="contrast %",
            readout_format=".1f",
            continuous_update=False,
            layout=widgets.Layout(width="380px"),
        )
        self.scale = widgets.ToggleButtons(
            options=list(pictures.SCALES),
            value=scale,
            description="scale",
            style={"button_width": "64px"},
            layout=widgets.Layout(margin="0 0 0 16px"),
        )
        self.info = widgets.HTML()

        self.scene = None
        self.threshold = None
        self.render_mode = None
        self.legend = None
        third = self._build_3d(render, level, max_3d, cmap, height_3d, width_3d, scale)

        panels = [
            widgets.VBox([img, slider], layout=widgets.Layout(align_items="center"))
            for img, slider in zip(self.images, self.sliders)
        ]
        controls = widgets.HBox([self.colormap, self.contrast, self.scale])
        children = [widgets.HBox(panels, layout=widgets.Layout(align_items="flex-start")), controls, self.info]
        if third is not None:
            children.append(third)
        super().__init__(children)
        self.add_class("beamhub-volume-viewer")

        for axis, slider in enumerate(self.sliders):
            slider.observe(lambda change, a=axis: self._on_index(a), names="value")
        self.contrast.observe(lambda change: self._on_display(), names="value")
        self.scale.observe(lambda change: self._on_display(), names="value")
        self.colormap.observe(lambda change: self._on_display(), names="value")
        self._on_display()

    # -- public API -------------------------------------------------------------------------

    @property
    def index(self) -> tuple[int, int, int]:
        """The slice shown on each axis, (z, y, x)."""
        return tuple(s.value for s in self.sliders)

    def set_index(self, z: int | None = None, y: int | None = None, x: int | None = None) -> None:
        """Move any of the three slices (as moving their sliders would)."""
        for slider, value in zip(self.sliders, (z, y, x)):
            if value is not None:
                slider.value = int(value)

    @property
    def limits(self) -> tuple[float, float]:
        """Display range (vmin, vmax) on the current scale (log10 units for "log")."""
        return self._limits

    def slice_data(self, axis: int | str) -> np.ndarray:
        """The 2-D slice shown on ``axis`` (0/"z", 1/"y", 2/"x"), full resolution, on the host.

        Returns
        -------
        numpy.ndarray, (Y, X) for z, (Z, X) for y, (Z, Y) for x; the volume's
        real dtype (modulus of a complex volume), linear scale.
        """
        axis = _axis_number(axis)
        cut = [slice(None)] * 3
        cut[axis] = self.sliders[axis].value
        return backend.to_numpy(self._volume[tuple(cut)])

    def slice_rgb(self, axis: int | str) -> np.ndarray:
        """The picture shown on ``axis``: (H, W, 3) uint8, enlarged and with the crosshair."""
        axis = _axis_number(axis)
        return self._decorate(axis)

    # -- drawing ----------------------------------------------------------------------------

    def _render(self, axis: int) -> None:
        shown = pictures.scaled(self.slice_data(axis), self.scale.value, self._floor)
        rgb = pictures.colorize(shown, *self._limits, cmap=self.colormap.value)
        self._rgb[axis] = pictures.upscale(rgb, self._zoom)

    def _decorate(self, axis: int) -> np.ndarray:
        rgb = self._rgb[axis]
        if not self._crosshair:
            return rgb
        rgb = rgb.copy()
        z, y, x = self.index
        rows, cols = {0: (y, x), 1: (z, x), 2: (z, y)}[axis]
        k = self._zoom
        width = max(1, k // 6)  # a thin line through the middle of the voxel, however enlarged
        off = (k - width) // 2
        rgb[rows * k + off : rows * k + off + width, :] = CROSSHAIR
        rgb[:, cols * k + off : cols * k + off + width] = CROSSHAIR
        return rgb

    def _publish(self, axis: int) -> None:
        self.images[axis].value = pictures.png_bytes(self._decorate(axis))

    def _on_index(self, axis: int) -> None:
        self._render(axis)
        for a in range(3):  # the others only move their crosshair
            if a == axis or self._crosshair:
                self._publish(a)
        self._update_info()

    def _on_display(self) -> None:
        values = pictures.scaled(self._sample, self.scale.value, self._floor)
        self._limits = pictures.contrast_limits(values, self.contrast.value)
        for a in range(3):
            self._render(a)
            self._publish(a)
        if self.scene is not None:
            # the volume rendering shows what the slices show: same scale, range and colours
            self.scene.set_colors(self.colormap.value, self._limits, self.scale.value)
            self.legend.value = self._legend_text()
        self._update_info()

    def _update_info(self) -> None:
        vmin, vmax = self._limits
        shape = "×".join(str(n) for n in self._volume.shape)
        where = ", ".join(f"{n}={i}" for n, i in zip(AXES, self.index))
        self.info.value = (
            f"<span class='beamhub-viewer-info'>volume {shape} · slice {where} · "
            f"display range [{vmin:.4g}, {vmax:.4g}] {self._scale_unit()}</span>"
        )

    def _scale_unit(self) -> str:
        """The unit of what is displayed: the values' unit, or log10 of it."""
        return f"log10({self.unit})" if self.scale.value == "log" else self.unit

    def _legend_text(self) -> str:
        return (
            f"<small class='beamhub-viewer-legend'>threshold in {self.unit} · "
            f"colour bar of the volume rendering in {self._scale_unit()}</small>"
        )

    def _build_3d(self, mode, level, max_3d, cmap, height, width, scale):
        if mode is None:
            return None
        try:
            import k3d  # noqa: F401, PLC0415 - optional: the 3-D view needs k3d, checked here
        except ImportError:
            return widgets.HTML("<i>The 3-D view needs k3d: <code>pip install k3d</code>.</i>")
        small, factors = pictures.downsample(self._volume, max_3d)
        vmin, vmax = float(np.nanmin(small)), float(np.nanmax(small))
        # frame the content, not an empty box: drop background borders (within 2 % of the
        # minimum); the threshold slider starts from that floor so nothing it shows is cut
        floor = vmin + 0.02 * (vmax - vmin)
        small, origin = pictures.crop_to_content(small, floor)
        if small.shape != tuple(n // f for n, f in zip(self._volume.shape, factors)):
            vmin = floor
        lo, hi = pictures.contrast_limits(self._sample, (1.0, 99.5))
        level = 0.5 * (lo + hi) if level is None else float(level)
        self.scene = Scene(
            small,
            factors,
            level=level,
            origin=origin,
            mode=mode,
            cmap=cmap,
            color_range=(lo, hi),
            scale=scale,
            log_floor=self._floor,
            height=height,
            width=width,
        )
        if vmax <= vmin:
            vmax = vmin + 1.0
        self.threshold = widgets.FloatSlider(
            value=float(np.clip(level, vmin, vmax)),
            min=vmin,
            max=vmax,
            step=(vmax - vmin) / 200,
            description="threshold",
            readout_format=".3g",
            continuous_update=False,
        )
        self.render_mode = widgets.ToggleButtons(options=list(RENDER_MODES), value=mode, description="3-D")
        self.legend = widgets.HTML(self._legend_text())
        self.threshold.observe(lambda change: self.scene.set_level(change["new"]), names="value")
        self.render_mode.observe(lambda change: self._on_mode(change["new"]), names="value")
        self.threshold.disabled = mode != "isosurface"
        cropped = (
            " around the content"
            if any(origin) or small.shape != tuple(n // f for n, f in zip(self._volume.shape, factors))
            else ""
        )
        note = widgets.HTML(
            f"<small>3-D view: {small.shape[0]}×{small.shape[1]}×{small.shape[2]} voxels{cropped} "
            f"(binned {factors[0]}×{factors[1]}×{factors[2]}); drag to turn, scroll to zoom.</small>"
        )
        return widgets.VBox([widgets.HBox([self.render_mode, self.threshold]), note, self.legend, self.scene.plot])

    def _on_mode(self, mode: str) -> None:
        self.scene.set_mode(mode)
        self.threshold.disabled = mode != "isosurface"


def _real(volume):
    """The volume as a real array on its own device (modulus of a complex one)."""
    xp = backend.array_module(volume)
    volume = pictures.as_real(volume if xp is not np else np.asarray(volume))
    return volume


def _axis_number(axis) -> int:
    if isinstance(axis, str):
        if axis not in AXES:
            raise ValueError(f"axis must be one of {', '.join(AXES)} or 0-2, got {axis!r}")
        return AXES.index(axis)
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be one of {', '.join(AXES)} or 0-2, got {axis!r}")
    return int(axis)
