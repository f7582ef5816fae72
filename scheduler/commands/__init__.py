"""Subcommands of `beamhub` that belong to the scheduler."""
