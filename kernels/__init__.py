"""BeamHub analysis library: backend, io, phasing, tomo, emc, sim, view (numpy on CPU, cupy on GPU)."""
