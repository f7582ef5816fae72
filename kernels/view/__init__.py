"""Widgets people look at: a 3-D volume viewer and a live monitor of iterative runs.

``VolumeViewer(volume)`` shows three orthogonal slices with sliders, contrast,
colour map and linear/log scale, and a WebGL 3-D view (k3d: isosurface with a
threshold, or volume rendering).  ``Monitor()`` is a callable
``monitor(iteration, model, figures)`` to pass as the ``callback`` of an EMC or
phasing run: it shows the current model's slices and the per-iteration
figures, updating in place.  ``render`` holds the pure array-to-picture steps.
"""

from beamhub.kernels.view.monitor import Monitor
from beamhub.kernels.view.volume import AXES, CMAPS, VolumeViewer

__all__ = ["AXES", "CMAPS", "Monitor", "VolumeViewer"]
