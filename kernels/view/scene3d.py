"""The 3-D half of the viewer: a k3d scene with an isosurface and a volume rendering.

k3d draws with WebGL in the browser: the isosurface is computed there by
marching cubes from the (downsampled) scalar field, so moving the threshold
sends one number, not a new mesh.  k3d is imported lazily; without it the
viewer keeps its slices and says what to install.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RENDER_MODES", "Scene", "k3d_color_map"]

#: What the 3-D view can draw.
RENDER_MODES = ("isosurface", "volume")

#: Isosurface colour (a warm gold that reads on k3d's white background).
ISO_COLOR = 0xD9A21B


def k3d_color_map(cmap: str, n: int = 64) -> np.ndarray:
    """A matplotlib colour map in k3d's layout: ``n`` rows of (position, r, g, b), flattened.

    Parameters
    ----------
    cmap : str
        matplotlib colour map name.
    n : int
        Number of samples.

    Returns
    -------
    numpy.ndarray, (4 * n,), float32, all values in [0, 1].
    """
    import matplotlib  # noqa: PLC0415

    x = np.linspace(0.0, 1.0, n)
    rgb = matplotlib.colormaps[cmap](x)[:, :3]
    return np.column_stack([x, rgb]).astype(np.float32).ravel()


class Scene:
    """A k3d plot holding one isosurface and one volume rendering of a small volume.

    Parameters
    ----------
    small : (Z, Y, X) numpy.ndarray, float32
        The downsampled volume (see :func:`beamhub.kernels.view.render.downsample`).
    factors : (fz, fy, fx) tuple of int
        Binning factors, so the box keeps the proportions of the full volume.
    origin : (z0, y0, x0) tuple of int
        Where ``small`` starts inside the binned volume (after a crop), in
        binned voxels; the scene's coordinates are full-volume voxels.
    level : float
        Isosurface threshold, in data units.
    mode : {"isosurface", "volume"}
        Which of the two is visible.
    cmap : str
        matplotlib colour map of the volume rendering.
    color_range : (float, float)
        Data values at the two ends of the colour map of the volume rendering.
    height : int
        Height of the 3-D view, CSS pixels.
    """

    def __init__(self, small, factors, *, level, origin=(0, 0, 0), mode="isosurface",
                 cmap="viridis", color_range=(0.0, 1.0), height=400):
        import k3d  # noqa: PLC0415 - optional: only the 3-D view needs it

        if mode not in RENDER_MODES:
            raise ValueError(f"render must be one of {', '.join(RENDER_MODES)} or None, got {mode!r}")
        z, y, x = small.shape
        fz, fy, fx = factors
        z0, y0, x0 = origin
        bounds = [x0 * fx, (x0 + x) * fx, y0 * fy, (y0 + y) * fy, z0 * fz, (z0 + z) * fz]
        self.plot = k3d.plot(height=height, grid_visible=False, menu_visibility=False,
                             camera_auto_fit=True, axes=["x", "y", "z"])
        self.isosurface = k3d.marching_cubes(small, level=float(level), color=ISO_COLOR,
                                             bounds=bounds, flat_shading=False,
                                             name="isosurface", visible=mode == "isosurface")
        self.volume = k3d.volume(small, color_range=[float(c) for c in color_range],
                                 color_map=k3d_color_map(cmap), bounds=bounds,
                                 name="volume", visible=mode == "volume")
        self.plot += self.isosurface
        self.plot += self.volume
        self.mode = mode
        self._legend()

    def _legend(self) -> None:
        # k3d's colour bar belongs to the volume rendering; 0 hides it (ids are positive)
        self.plot.colorbar_object_id = self.volume.id if self.mode == "volume" else 0

    def set_level(self, level: float) -> None:
        """Move the isosurface to ``level`` (data units)."""
        self.isosurface.level = float(level)

    def set_mode(self, mode: str) -> None:
        """Show the isosurface or the volume rendering."""
        if mode not in RENDER_MODES:
            raise ValueError(f"render must be one of {', '.join(RENDER_MODES)}, got {mode!r}")
        self.isosurface.visible = mode == "isosurface"
        self.volume.visible = mode == "volume"
        self.mode = mode
        self._legend()

    def set_colors(self, cmap: str, color_range) -> None:
        """Colour map and its data range for the volume rendering."""
        self.volume.color_map = k3d_color_map(cmap)
        self.volume.color_range = [float(c) for c in color_range]
