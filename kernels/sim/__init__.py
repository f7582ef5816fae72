"""Simulators with ground truth, for tests, demos and benchmarks.

One submodule per experiment: ``cdi`` (coherent diffraction for phasing),
``tomo`` (phantoms and parallel-beam scans), ``spi`` (single-particle frames
for EMC).  Their public names are reachable from here too, e.g.
``beamhub.kernels.sim.shepp_logan_3d``; submodules load on first use.
"""

from __future__ import annotations

import importlib

_SUBMODULES = ("cdi", "tomo", "spi")


def __getattr__(name: str):
    for sub in _SUBMODULES:
        try:
            module = importlib.import_module(f"{__name__}.{sub}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{sub}":
                continue
            raise
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
