"""BeamAuthenticator's seam: claims in auth_state become a checked POSIX identity, or a 403."""

import pytest
from tornado import web

from beamhub.hub.auth import BeamAuthenticator


def _model(**claims):
    return {"name": "alice", "admin": None, "auth_state": {"access_token": "t", "oauth_user": claims}}


async def test_identity_is_stored_in_auth_state():
    auth = BeamAuthenticator()
    model = await auth.update_auth_model(_model(uid=2001, gid=2001, gids=[3001], groups=["spi"]))
    assert model["auth_state"]["beamhub"] == {
        "username": "alice",
        "uid": 2001,
        "gid": 2001,
        "gids": [3001],
        "groups": ["spi"],
        "email": None,
    }


@pytest.mark.parametrize(
    "claims, words",
    [
        ({"gid": 2001}, "no user id"),
        ({"uid": 0, "gid": 2001}, "uid 0"),
        ({"uid": 2001, "gid": 0}, "gid 0"),
    ],
)
async def test_unsafe_identity_is_a_readable_403(claims, words):
    auth = BeamAuthenticator()
    with pytest.raises(web.HTTPError) as err:
        await auth.update_auth_model(_model(**claims))
    assert err.value.status_code == 403
    assert words in err.value.log_message
    assert "user office" in err.value.log_message


def test_defaults_suit_an_oidc_provider():
    auth = BeamAuthenticator()
    assert auth.username_claim == "preferred_username"
    assert auth.manage_groups and auth.enable_auth_state and auth.refresh_pre_spawn
    assert auth.auth_state_groups_key == "oauth_user.groups"
    assert {"openid", "groups", "posix", "offline_access"} <= set(auth.scope)


async def test_a_mixed_case_login_name_gives_the_identity_jupyterhubs_lower_case_name():
    """JupyterHub lower-cases user names after authenticate(); the identity (BEAMHUB_USER, the home
    folder's subPath, the home-init step) must use the same name, not the provider's spelling."""
    auth = BeamAuthenticator()
    model = _model(uid=2001, gid=2001)
    model["name"] = "Alice"
    stored = await auth.update_auth_model(model)
    assert stored["auth_state"]["beamhub"]["username"] == "alice"
