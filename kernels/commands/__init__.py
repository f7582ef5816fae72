"""Subcommands of `beamhub` that run analysis kernels."""
