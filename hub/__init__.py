"""JupyterHub side of BeamHub: SSO authenticator, environment catalog, spawners, launch page, `beamhub up`."""
