"""An expected 403 (an environment the user's groups do not open) is one warning line, no traceback."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from tornado import web

from beamhub.hub.identity import Identity
from beamhub.hub.local import LocalBeamSpawner
from beamhub.hub.menu import EnvironmentRefused


def _spawner(identity: Identity) -> LocalBeamSpawner:
    spawner = LocalBeamSpawner()
    spawner.user = SimpleNamespace(name=identity.username, admin=False, groups=[])
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, name="")
    spawner.identity = identity
    return spawner


def _as_jupyterhub_logs_it(logger: logging.Logger, exc: BaseException) -> None:
    """What jupyterhub.handlers.pages.SpawnHandler.post does with an options_from_form error."""
    try:
        raise exc
    except Exception:
        logger.error("Failed to spawn single-user server with form", exc_info=True)


async def test_forged_form_is_a_403_logged_as_one_warning(caplog):
    bob = Identity("bob", 2002, 2002, (), ("tomo",))
    with pytest.raises(EnvironmentRefused) as err:
        await _spawner(bob).options_from_form({"environment": ["spi-emc"]})
    assert err.value.status_code == 403 and isinstance(err.value, web.HTTPError)
    hub_log = logging.getLogger("JupyterHub")
    with caplog.at_level(logging.INFO, logger="JupyterHub"):
        _as_jupyterhub_logs_it(hub_log, err.value)
    [record] = [r for r in caplog.records if r.name == "JupyterHub"]
    assert record.levelno == logging.WARNING and record.exc_info is None
    text = caplog.text.strip()
    assert len(text.splitlines()) == 1 and "403" in text and "may not start" in text
    assert "Traceback" not in text


def test_unexpected_errors_keep_their_traceback(caplog):
    hub_log = logging.getLogger("JupyterHub")
    with caplog.at_level(logging.INFO, logger="JupyterHub"):
        _as_jupyterhub_logs_it(hub_log, web.HTTPError(500, "boom"))
    [record] = [r for r in caplog.records if r.name == "JupyterHub"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
