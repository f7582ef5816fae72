"""The 3-D half of the viewer: a k3d scene with an isosurface and a volume rendering.

k3d draws with WebGL in the browser: the isosurface is computed there by
marching cubes from the (downsampled) scalar field, so moving the threshold
sends one number, not a new mesh.  k3d is imported lazily; without it the
viewer keeps its slices and says what to install.

The camera is placed here, not by k3d's auto-fit: k3d backs off until the
bounding *sphere* of everything in the scene fits with 50 % to spare, which
leaves an object a small shape in a large canvas.  :func:`frame_camera`
instead puts the content's corners just inside the view (a pure function,
tested on its own).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CAMERA_FOV",
    "FILL",
    "RENDER_MODES",
    "Scene",
    "content_points",
    "frame_camera",
    "k3d_color_map",
    "projected_extent",
]

#: What the 3-D view can draw.
RENDER_MODES = ("isosurface", "volume")

#: Isosurface colour (a warm gold that reads on k3d's white background).
ISO_COLOR = 0xD9A21B

#: Vertical field of view of the camera, degrees (k3d's default, passed explicitly).
CAMERA_FOV = 60.0

#: Share of the view's height (and width) the framed content may span at most.
FILL = 0.9

#: Direction from the object to the camera: in front, to the right and above (x, y, z),
#: so three faces show; z is up, as in k3d's axes.
VIEW_DIRECTION = (0.55, -0.75, 0.45)


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
    import matplotlib  # noqa: PLC0415 - colour maps loaded only when a 3-D view is drawn

    x = np.linspace(0.0, 1.0, n)
    rgb = matplotlib.colormaps[cmap](x)[:, :3]
    return np.column_stack([x, rgb]).astype(np.float32).ravel()


def _camera_axes(direction, up=(0.0, 0.0, 1.0)):
    """Unit vectors (back, right, up) of a camera looking along ``-direction``."""
    back = np.asarray(direction, dtype=float)
    back = back / np.linalg.norm(back)
    right = np.cross(-back, np.asarray(up, dtype=float))
    right /= np.linalg.norm(right)
    return back, right, np.cross(right, -back)


def frame_camera(
    points,
    *,
    aspect: float = 1.0,
    fov: float = CAMERA_FOV,
    fill: float = FILL,
    direction=VIEW_DIRECTION,
    up=(0.0, 0.0, 1.0),
) -> list[float]:
    """A k3d camera that looks at ``points`` from ``direction`` and fits them just inside the view.

    The camera aims at the centre of the points' bounding box and stands as close as it can
    while every point projects within ``fill`` of the half-height and half-width of the view
    (perspective projection, vertical field of view ``fov``).

    Parameters
    ----------
    points : (N, 3) array_like
        What must be seen, in scene coordinates (x, y, z), e.g. the corners of the content.
    aspect : float
        Width / height of the canvas (>= 1 for a wide one; 1 when unknown, which is safe).
    fov : float
        Vertical field of view, degrees.
    fill : float
        Largest share of the view the points may span, in (0, 1].
    direction : (3,) array_like
        From the target towards the camera (need not be normalised).
    up : (3,) array_like
        Which way is up on the screen.

    Returns
    -------
    list of 9 float: camera position, target and up vector, as k3d's ``plot.camera`` wants.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    if not 0 < fill <= 1:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    target = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    back, right, screen_up = _camera_axes(direction, up)
    rel = pts - target
    t = np.tan(np.radians(fov) / 2) * fill
    # a point at depth d in front of the camera is in view when |y| <= d t and |x| <= d t aspect
    need = rel @ back + np.maximum(np.abs(rel @ screen_up) / t, np.abs(rel @ right) / (t * aspect))
    distance = max(float(need.max()), 1e-6)
    position = target + distance * back
    return [*position.tolist(), *target.tolist(), *screen_up.tolist()]


def projected_extent(points, camera, *, aspect: float = 1.0, fov: float = CAMERA_FOV):
    """Where ``points`` land on the screen of ``camera``, as a share of the view.

    Parameters
    ----------
    points : (N, 3) array_like
        Scene coordinates.
    camera : sequence of 9 float
        k3d's ``plot.camera`` (position, target, up).
    aspect, fov : float
        As for :func:`frame_camera`.

    Returns
    -------
    (width, height) : floats, the points' bounding box on screen as a share of the view's
    width and height (1.0: edge to edge).
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    position, target, up = (np.asarray(camera[k : k + 3], dtype=float) for k in (0, 3, 6))
    back, right, screen_up = _camera_axes(position - target, up)
    rel = pts - position
    depth = -(rel @ back)
    t = np.tan(np.radians(fov) / 2)
    x = (rel @ right) / (depth * t * aspect)
    y = (rel @ screen_up) / (depth * t)
    return float(x.max() - x.min()) / 2, float(y.max() - y.min()) / 2


def content_points(small: np.ndarray, level: float, bounds, max_points: int = 200_000) -> np.ndarray:
    """The corners of the voxels of ``small`` at or above ``level`` on its surface, in scene coordinates.

    What the camera must show of an isosurface at ``level``: the surface lies within the
    voxels above the level that touch one below it, so their corners bound it closely (a
    ball's corners project as a disc, where its box's corners would project as a larger
    hexagon).  Interior voxels add nothing and are left out.

    Parameters
    ----------
    small : (Z, Y, X) numpy.ndarray
    level : float
        Voxels below it are outside.  With none at or above it (or ``-inf``), the whole box.
    bounds : sequence of 6 float
        x0, x1, y0, y1, z0, z1: the box ``small`` fills in the scene.
    max_points : int
        Above this many corners (a noisy volume, all surface), the corners of the
        bounding box of the voxels inside stand in.

    Returns
    -------
    (N, 3) numpy.ndarray, float: points (x, y, z).
    """
    size = np.array(small.shape, dtype=float)[::-1]  # (x, y, z)
    origin = np.array(bounds[0::2], dtype=float)
    step = (np.array(bounds[1::2], dtype=float) - origin) / size
    inside = small >= level  # marching cubes draws a voxel at the level as inside
    if not inside.any():
        inside = np.ones(small.shape, dtype=bool)
    padded = np.pad(inside, 1)
    interior = inside.copy()
    for axis in range(3):
        for shift in (-1, 1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    surface = np.argwhere(inside & ~interior)[:, ::-1]  # (x, y, z) voxel indices
    offsets = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    if 8 * len(surface) > max_points:
        lo, hi = surface.min(axis=0), surface.max(axis=0)
        corners = lo + offsets * (hi + 1 - lo)
    else:
        corners = (surface[:, None, :] + offsets[None]).reshape(-1, 3)
    return origin + corners * step


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
        Values at the two ends of the colour map of the volume rendering, on ``scale``
        (log10 of the data for "log").
    scale : {"linear", "log"}
        What the volume rendering (and its colour bar) shows: the data, or ``log10`` of it
        with values below ``log_floor`` shown as the floor.  The isosurface always works on
        the data itself.
    log_floor : float
        Smallest value a log scale shows (> 0).
    height : int
        Height of the 3-D view, CSS pixels.
    width : int or None
        Width of the 3-D view, CSS pixels; None takes the cell's width.  The camera fits the
        content to a canvas of ``width / height`` (a square when None: safe on any width).

    Attributes
    ----------
    plot : k3d.plot.Plot
    isosurface, volume : k3d objects
    camera : list of 9 float
        The first camera (position, target, up), framing the content.
    aspect : float
        The width / height the camera was framed for.
    """

    def __init__(
        self,
        small,
        factors,
        *,
        level,
        origin=(0, 0, 0),
        mode="isosurface",
        cmap="viridis",
        color_range=(0.0, 1.0),
        scale="linear",
        log_floor=1.0,
        height=400,
        width=None,
    ):
        import k3d  # noqa: PLC0415 - optional: only the 3-D view needs it

        if mode not in RENDER_MODES:
            raise ValueError(f"render must be one of {', '.join(RENDER_MODES)} or None, got {mode!r}")
        z, y, x = small.shape
        fz, fy, fx = factors
        z0, y0, x0 = origin
        bounds = [x0 * fx, (x0 + x) * fx, y0 * fy, (y0 + y) * fy, z0 * fz, (z0 + z) * fz]
        self._small = small
        self._floor = float(log_floor)
        self.scale = scale
        self.aspect = float(width) / float(height) if width else 1.0
        # frame what is seen first: the isosurface's voxels, or the whole box for the volume
        points = content_points(small, float(level) if mode == "isosurface" else -np.inf, bounds)
        self.camera = frame_camera(points, aspect=self.aspect)
        self.plot = k3d.plot(
            height=height,
            grid_visible=False,
            menu_visibility=False,
            camera_auto_fit=False,
            camera_fov=CAMERA_FOV,
            axes=["x", "y", "z"],
        )
        if width:
            self.plot.layout.width = f"{int(width)}px"
        self.isosurface = k3d.marching_cubes(
            small,
            level=float(level),
            color=ISO_COLOR,
            bounds=bounds,
            flat_shading=False,
            name="isosurface",
            visible=mode == "isosurface",
        )
        self.volume = k3d.volume(
            self._shown(scale),
            color_range=[float(c) for c in color_range],
            color_map=k3d_color_map(cmap),
            bounds=bounds,
            name="volume",
            visible=mode == "volume",
        )
        self.plot += self.isosurface
        self.plot += self.volume
        self.plot.camera = list(self.camera)
        self.mode = mode
        self._legend()

    def _shown(self, scale: str) -> np.ndarray:
        if scale == "log":
            return np.log10(np.maximum(self._small, np.float32(self._floor))).astype(np.float32)
        return np.asarray(self._small, dtype=np.float32)

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

    def set_colors(self, cmap: str, color_range, scale: str | None = None) -> None:
        """Colour map, its range and (optionally) the scale of the volume rendering.

        ``color_range`` is on the new scale: log10 of the data for "log".
        """
        if scale is not None and scale != self.scale:
            self.volume.volume = self._shown(scale)
            self.scale = scale
        self.volume.color_map = k3d_color_map(cmap)
        self.volume.color_range = [float(c) for c in color_range]
