"""Shared fixtures: the real platform (OIDC provider + configurable-http-proxy + JupyterHub)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from sso_client import HubAPI

from beamhub.hub.platform import DEMO_ACCOUNTS, Platform, PlatformConfig

# Accounts beside the demo ones whose identity the hub must refuse.
UNSAFE_ACCOUNTS = [
    {"username": "mallory", "password": "mallory", "uid": 0, "gid": 2010, "groups": ["tomo"]},
    {"username": "nouid", "password": "nouid", "gid": 2011, "groups": ["tomo"]},
    # a complete identity, but in no group the hub admits
    {"username": "visitor", "password": "visitor", "uid": 2012, "gid": 2012, "groups": ["visitors"]},
]


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """One live platform for the session, on free loopback ports; all sessions stopped at the end."""
    # Not under pytest's basetemp: that is 0700, and as root (isolated mode) users' sessions must pass
    # through every folder above their workspace.
    state = Path(tempfile.mkdtemp(prefix="beamhub-state-"))
    config = PlatformConfig.on_free_ports(
        state,
        accounts=[dict(a) for a in DEMO_ACCOUNTS] + UNSAFE_ACCOUNTS,
        allowed_groups=["spi", "tomo", "admins"],
        # short-lived access tokens, so every spawn exercises the refresh before spawn
        access_token_ttl=4,
    )
    live = Platform(config)
    live.start()
    live.api = HubAPI(config.public_url, config.admin_service_token)
    live.url = config.public_url
    yield live
    try:
        live.api.stop_all()
    finally:
        live.stop()
        shutil.rmtree(state, ignore_errors=True)
