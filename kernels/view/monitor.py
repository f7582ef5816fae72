"""``Monitor``: watch an iterative reconstruction converge, updating in place.

A monitor is a callable ``monitor(iteration, model, figures)`` that a run
calls after each iteration (the ``callback`` of an EMC or phasing run).  It
keeps the history of every figure, and at most every ``min_interval``
seconds redraws the model's three central slices and one plot per figure in
the same widgets, so a notebook cell shows one live panel rather than a
scroll of outputs.  Drawing happens in the calling thread with matplotlib's
Agg renderer (no pyplot state), so it works in any kernel and under nbclient.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np

from beamhub.kernels import backend
from beamhub.kernels.view import render as pictures

__all__ = ["FIGURE_UNITS", "Monitor"]

#: Units of the figures BeamHub's runs report, shown in plot titles and the status line.
#: EMC (``IterationFigures``): the model is in photons per voxel, log-likelihoods and mutual
#: information in nats.  Phasing: the Fourier error is relative to the measured amplitudes.
FIGURE_UNITS = {
    "time": "s",
    "rms_change": "photons/voxel",
    "info_rate": "nats",
    "mutual_info": "nats",
    "likelihood": "nats/frame",
    "log_likelihood": "nats",
    "beta": "dimensionless",
    "num_rot": "orientations",
    "fourier_error": "relative",
}


class Monitor(widgets.VBox):
    """A live panel of the current model and the per-iteration figures of a run.

    Parameters
    ----------
    title : str, optional
        Shown above the panel.
    cmap : str
        matplotlib colour map of the model slices.
    scale : {"linear", "log"}
        Scale of the model slices ("log" for diffraction intensities).
    percentiles : (float, float)
        Contrast of the model slices (percentiles of each slice, 0-100).
    min_interval : float
        Seconds between two redraws; calls in between only record the
        figures (a run of fast iterations is not slowed down by drawing).
        0 draws at every call.
    plots : sequence of str, optional
        Figures to plot, in this order; by default every numeric figure, in
        the order they first arrive.  All figures are recorded either way.
    log_figures : sequence of str, optional
        Figures plotted on a log y-axis; by default those that are positive
        and span more than two decades.
    panel_size : int
        Model slices are enlarged by an integer factor to about this many pixels.
    units : mapping of str to str, optional
        Unit of each figure, shown in its plot's title and in the status line; added to
        (and overriding) :data:`FIGURE_UNITS`.
    model_unit : str
        Unit of the model's values ("photons/voxel" for an EMC intensity), shown in the
        caption of its slices with the scale; "a.u." (arbitrary units) when not given.
    group : str or None
        A figure that tells runs apart: each of its values gets its own curve in every
        plot, against the iteration counted from that value's first call, with a legend.
        The default, "start", draws each random start of a phasing run (whose callback
        reports ``start``) as its own curve.  The group figure itself is not plotted.
        None: one curve per figure.
    fftshift : bool
        The model comes in FFT order (its object sits around index 0, as
        after a bare ``ifftn``): show the slices through index 0, re-centred,
        as ``numpy.fft.fftshift`` of the model would.

    Attributes
    ----------
    history : dict of str to list of float
        Every figure at every call, in call order.
    iterations : list of int
        The ``iteration`` of every call.
    slices : tuple of 3 ipywidgets.Image
        The model slices (one for a 2-D model).
    caption : ipywidgets.HTML
        What the slices show: which slices, on which scale, in which unit.
    plot : ipywidgets.Image
        The figure plots.
    status : ipywidgets.HTML
        The latest iteration and figures as text.
    draws : int
        How many times the panel was redrawn.

    Examples
    --------
    >>> monitor = Monitor(title="EMC", scale="log")           # doctest: +SKIP
    >>> display(monitor)                                        # doctest: +SKIP
    >>> history = run(emc, 20, callback=monitor)                # doctest: +SKIP
    >>> phase(..., callback=Monitor(), callback_every=10)      # doctest: +SKIP
    >>> monitor(3, model, {"rms_change": 0.01, "mutual_info": 1.2})   # what a run calls
    """

    def __init__(
        self,
        *,
        title: str | None = None,
        cmap: str = "viridis",
        scale: str = "linear",
        percentiles=(1.0, 99.5),
        min_interval: float = 0.5,
        plots=None,
        log_figures=None,
        panel_size: int = 192,
        units=None,
        model_unit: str = "a.u.",
        group: str | None = "start",
        fftshift: bool = False,
    ):
        if scale not in pictures.SCALES:
            raise ValueError(f"scale must be one of {', '.join(pictures.SCALES)}, got {scale!r}")
        pictures.contrast_limits(np.zeros(1), percentiles)  # validates the pair
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self.cmap, self.scale, self.percentiles = cmap, scale, tuple(percentiles)
        self.min_interval = float(min_interval)
        self.plots = None if plots is None else [str(p) for p in plots]
        self.log_figures = None if log_figures is None else set(log_figures)
        self.panel_size = int(panel_size)
        self.units = {**FIGURE_UNITS, **dict(units or {})}
        self.model_unit = str(model_unit) or "a.u."
        self.group = None if group is None else str(group)
        self.fftshift = bool(fftshift)
        self.history: dict[str, list[float]] = {}
        self.iterations: list[int] = []
        self.draws = 0
        self._last_draw = -math.inf
        self._latest: list[np.ndarray] = []
        self._dirty = False

        self.status = widgets.HTML("<i>waiting for the first iteration…</i>")
        self.slices = tuple(widgets.Image(format="png") for _ in range(3))
        for img, name in zip(self.slices, ("z", "y", "x")):
            img.add_class(f"beamhub-monitor-{name}")
        self.plot = widgets.Image(format="png")
        self.plot.add_class("beamhub-monitor-plot")
        head = [widgets.HTML(f"<b>{title}</b>")] if title else []
        scale_unit = f"log10({self.model_unit})" if scale == "log" else self.model_unit
        self.caption = widgets.HTML(
            f"<small class='beamhub-monitor-caption'>model: central slices (z, y, x) in {scale_unit}, "
            f"each from its {self.percentiles[0]:g}th to {self.percentiles[1]:g}th percentile</small>"
        )
        # in an HBox the plot keeps its own pixel size instead of stretching to the cell's width
        super().__init__([*head, self.status, widgets.HBox(list(self.slices)), self.caption, widgets.HBox([self.plot])])
        self.add_class("beamhub-monitor")

    def __call__(self, iteration: int, model, figures: Mapping[str, float] | Any = None) -> None:
        """Record one iteration and redraw if ``min_interval`` has passed.

        Parameters
        ----------
        iteration : int
            Iteration number (as the run counts them).
        model : (Z, Y, X) or (Y, X) numpy or cupy array, or None
            The current model (intensity, density or complex image: its
            modulus is shown).  Only its central slices are copied to the
            host, at every call, so the run may overwrite it afterwards.
        figures : mapping of str to float, or a dataclass, optional
            Per-iteration figures, e.g. ``{"rms_change": 1e-3,
            "mutual_info": 2.1, "log_likelihood": -3e5}``, or a record such as
            EMC's ``IterationFigures`` (its fields are read).  Non-numeric
            values (arrays, dicts, text) and a field named ``iteration`` are
            ignored.
        """
        self.iterations.append(int(iteration))
        known = set(self.history)
        for name, value in _as_mapping(figures).items():
            if name == "iteration":
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if name not in self.history:  # a figure that starts late: pad its past with NaN
                self.history[name] = [math.nan] * (len(self.iterations) - 1)
            self.history[name].append(number)
            known.discard(name)
        for name in known:  # a figure missing this time
            self.history[name].append(math.nan)
        if model is not None:
            self._latest = _central_slices(model, self.fftshift)
        self._dirty = True
        now = time.monotonic()
        if now - self._last_draw >= self.min_interval:
            self.refresh()

    def refresh(self) -> None:
        """Redraw now with everything recorded so far (call it after the run for the final state)."""
        if not self._dirty:
            return
        self._last_draw = time.monotonic()
        self._dirty = False
        self.draws += 1
        self.status.value = self._status_text()
        for img, data in zip(self.slices, self._latest):
            img.value = self._slice_png(data)
            img.layout.display = None
        for img in self.slices[len(self._latest) :]:
            img.layout.display = "none"
        if self._plotted():
            self.plot.value = self._plot_png()

    def _status_text(self) -> str:
        parts = [f"iteration <b>{self.iterations[-1]}</b>"]
        for name, values in self.history.items():
            if values and not math.isnan(values[-1]):
                unit = self.units.get(name, "")
                unit = "" if unit in ("", "dimensionless", "relative") else f" {unit}"
                parts.append(f"{name} = {values[-1]:.5g}{unit}")
        return "<span class='beamhub-monitor-status'>" + " · ".join(parts) + "</span>"

    def _slice_png(self, data: np.ndarray) -> bytes:
        values = pictures.scaled(data, self.scale, pictures.log_floor(data.ravel()))
        vmin, vmax = pictures.contrast_limits(values, self.percentiles)
        rgb = pictures.colorize(values, vmin, vmax, cmap=self.cmap)
        zoom = max(1, self.panel_size // max(data.shape))
        return pictures.png_bytes(pictures.upscale(rgb, zoom))

    def _plot_png(self) -> bytes:
        buf = io.BytesIO()
        self.figure().savefig(buf, format="png")
        return buf.getvalue()

    def figure(self):
        """The plots as a matplotlib Figure (Agg, no pyplot state): one axes per plotted figure,
        titled with its unit, one line per value of ``group`` (each random start)."""
        from matplotlib.figure import Figure  # noqa: PLC0415 - Agg, no pyplot state

        names = self._plotted()
        cols = min(3, len(names))
        rows = math.ceil(len(names) / cols)
        fig = Figure(figsize=(3.2 * cols, 2.3 * rows), dpi=80, layout="constrained")
        x = np.asarray(self.iterations, dtype=float)
        curves = self._curves()
        for k, name in enumerate(names):
            ax = fig.add_subplot(rows, cols, k + 1)
            y = np.asarray(self.history[name], dtype=float)
            for label, rows_of, offset in curves:
                ax.plot(
                    x[rows_of] - offset,
                    y[rows_of],
                    marker="o" if rows_of.sum() < 30 else None,
                    markersize=3,
                    label=label,
                )
            if self._log_axis(name, y):
                ax.set_yscale("log")
            unit = self.units.get(name, "")
            ax.set_title(f"{name} ({unit})" if unit else name, fontsize=10)
            ax.set_xlabel(f"iteration of each {self.group}" if len(curves) > 1 else "iteration", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if len(curves) > 1 and k == 0:
                ax.legend(fontsize=7, ncol=1 + len(curves) // 6)
        return fig

    def _plotted(self) -> list[str]:
        if self.plots is None:
            return [name for name in self.history if name != self.group]
        return [name for name in self.plots if name in self.history]

    def _curves(self) -> list[tuple[str | None, np.ndarray, float]]:
        """(legend label, which calls, x offset) of each curve: one per value of the group figure.

        A group's x offset shifts its first call onto the first group's first call, so the
        curves of phasing's starts (whose iterations count on over all starts) lie on top of
        each other and compare at a glance.
        """
        count = len(self.iterations)
        if self.group is None or self.group not in self.history:
            return [(None, np.ones(count, dtype=bool), 0.0)]
        values = np.asarray(self.history[self.group], dtype=float)
        x = np.asarray(self.iterations, dtype=float)
        keys = list(dict.fromkeys(v for v in values.tolist() if not math.isnan(v)))
        if len(keys) <= 1:
            return [(None, np.ones(count, dtype=bool), 0.0)]
        first = x[values == keys[0]][0]
        curves = []
        for key in keys:
            rows_of = values == key
            curves.append((f"{self.group} {key:g}", rows_of, float(x[rows_of][0] - first)))
        return curves

    def _log_axis(self, name: str, y: np.ndarray) -> bool:
        if self.log_figures is not None:
            return name in self.log_figures
        y = y[np.isfinite(y)]
        return y.size > 1 and bool(np.all(y > 0)) and y.max() / y.min() > 100


def _as_mapping(figures) -> Mapping:
    """Figures as a mapping: a mapping itself, a dataclass's fields, or nothing."""
    if figures is None:
        return {}
    if isinstance(figures, Mapping):
        return figures
    if dataclasses.is_dataclass(figures) and not isinstance(figures, type):
        return {f.name: getattr(figures, f.name) for f in dataclasses.fields(figures)}
    raise TypeError(f"figures must be a mapping or a dataclass, got {type(figures).__name__}")


def _central_slices(model, fftshift: bool = False) -> list[np.ndarray]:
    """The central slice on each axis of a 3-D model (the model itself if 2-D), on the host.

    With ``fftshift`` the model is in FFT order: the slices of ``fftshift(model)``
    through its centre are the model's slices through index 0, shifted (only
    the slices are shifted, never the whole model).
    """
    ndim = getattr(model, "ndim", None)
    if ndim not in (2, 3):
        raise ValueError(f"Monitor shows 2-D or 3-D models, got shape {getattr(model, 'shape', None)}")
    if ndim == 2:
        picture = backend.to_numpy(pictures.as_real(model)).astype(np.float32)
        return [np.fft.fftshift(picture) if fftshift else picture]
    out = []
    for axis in range(3):
        cut = [slice(None)] * 3
        cut[axis] = 0 if fftshift else model.shape[axis] // 2
        picture = backend.to_numpy(pictures.as_real(model[tuple(cut)])).astype(np.float32)
        out.append(np.fft.fftshift(picture) if fftshift else picture)
    return out
