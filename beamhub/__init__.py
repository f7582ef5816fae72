"""BeamHub: an interactive analysis platform for photon science.

The distribution holds three packages — ``beamhub.hub`` (JupyterHub side),
``beamhub.kernels`` (the analysis library) and ``beamhub.scheduler`` (the
kube-scheduler extender) — and the ``beamhub`` command that fronts them.
"""

__version__ = "0.1.0"
