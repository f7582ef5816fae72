"""deploy/keycloak/beamhub-realm.json: the walkthrough's Keycloak realm, imported instead of clicked.

The export must parse and hold what BeamHub reads (hub/auth.py, hub/identity.py): a confidential
client whose secret and callback are values-kind.yaml's, every scope BeamAuthenticator asks for,
and mappers that put the username (preferred_username), the groups and the POSIX identity (uid,
gid, gids as numbers) into the userinfo, named as BeamAuthenticator's claim settings name them.
Its users' claims, as those mappers would write them, must give an identity the hub accepts.

(Beyond this test, the file was imported into Keycloak 26.0.7, `kc.sh start-dev --import-realm`,
and alice, bob and admin signed in through the authorization-code flow with the scopes
BeamAuthenticator asks for: the userinfo carried preferred_username, groups, and uid, gid and
gids as numbers — see deploy/docs/keycloak.md.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from beamhub.hub.auth import BeamAuthenticator
from beamhub.hub.identity import identity_from_claims

REPO = Path(__file__).resolve().parents[2]
REALM = REPO / "deploy" / "keycloak" / "beamhub-realm.json"
KIND = yaml.safe_load((REPO / "deploy" / "examples" / "values-kind.yaml").read_text())
AUTH = KIND["jupyterhub"]["hub"]["config"]["BeamAuthenticator"]


@pytest.fixture(scope="module")
def realm() -> dict:
    return json.loads(REALM.read_text())


@pytest.fixture(scope="module")
def authenticator() -> BeamAuthenticator:
    return BeamAuthenticator(client_id="beamhub", client_secret="x")


def scopes_by_name(realm: dict) -> dict[str, dict]:
    return {scope["name"]: scope for scope in realm["clientScopes"]}


def userinfo_mappers(realm: dict, client: dict) -> dict[str, dict]:
    """claim name -> mapper, for every mapper of the client's default scopes that writes the userinfo."""
    scopes = scopes_by_name(realm)
    out = {}
    for name in client["defaultClientScopes"]:
        for mapper in scopes[name].get("protocolMappers", []):
            config = mapper["config"]
            if config.get("userinfo.token.claim") == "true":
                out[config.get("claim.name", mapper["name"])] = mapper
    return out


def test_realm_and_client_are_the_ones_values_kind_names(realm):
    assert f"/realms/{realm['realm']}/" in AUTH["userdata_url"]
    (client,) = [c for c in realm["clients"] if c["clientId"] == AUTH["client_id"]]
    assert client["enabled"] and client["publicClient"] is False and client["standardFlowEnabled"]
    assert client["secret"] == AUTH["client_secret"]
    assert AUTH["oauth_callback_url"] in client["redirectUris"]
    assert client["directAccessGrantsEnabled"] is False and client["implicitFlowEnabled"] is False


def test_every_scope_beamauthenticator_asks_for_is_the_clients(realm, authenticator):
    (client,) = [c for c in realm["clients"] if c["clientId"] == AUTH["client_id"]]
    assigned = set(client["defaultClientScopes"]) | set(client["optionalClientScopes"])
    defined = set(scopes_by_name(realm))
    wanted = set(authenticator.scope) - {"openid"}  # openid is the protocol's own
    assert wanted <= assigned <= defined, (wanted - assigned, assigned - defined)
    # groups and posix come with every sign-in, not only on request
    assert {"groups", "posix", "profile"} <= set(client["defaultClientScopes"])
    # offline_access is a role too: without it Keycloak refuses the token ("Offline tokens not
    # allowed for the user or client"), so the scope maps it and every user holds the default roles
    assert {"clientScope": "offline_access", "roles": ["offline_access"]} in realm["scopeMappings"]
    assert all(f"default-roles-{realm['realm']}" in user["realmRoles"] for user in realm["users"])


def test_userinfo_holds_the_claims_beamhub_reads_named_as_it_reads_them(realm, authenticator):
    (client,) = [c for c in realm["clients"] if c["clientId"] == AUTH["client_id"]]
    mappers = userinfo_mappers(realm, client)
    username = mappers[authenticator.username_claim]
    assert username["protocolMapper"] == "oidc-usermodel-property-mapper"
    assert username["config"]["user.attribute"] == "username"
    groups = mappers[authenticator.groups_claim]
    assert groups["protocolMapper"] == "oidc-group-membership-mapper"
    assert groups["config"]["full.path"] == "false"  # "spi", not "/spi": the catalog names groups so
    for claim, multivalued in (
        (authenticator.uid_claim, False),
        (authenticator.gid_claim, False),
        (authenticator.gids_claim, True),
    ):
        mapper = mappers[claim]
        assert mapper["protocolMapper"] == "oidc-usermodel-attribute-mapper"
        assert mapper["config"]["jsonType.label"] == "int"
        assert (mapper["config"]["multivalued"] == "true") is multivalued


def test_users_may_see_but_not_change_their_posix_identity(realm):
    (profile,) = realm["components"]["org.keycloak.userprofile.UserProfileProvider"]
    config = json.loads(profile["config"]["kc.user.profile.config"][0])
    attributes = {a["name"]: a for a in config["attributes"]}
    for name in ("uid", "gid", "gids"):
        assert attributes[name]["permissions"]["edit"] == ["admin"], name
        assert "integer" in attributes[name]["validations"]
    assert attributes["gids"]["multivalued"] is True
    assert config["unmanagedAttributePolicy"] != "ENABLED"  # no attribute a user can set at will


def test_each_users_claims_give_an_identity_the_hub_accepts(realm, authenticator):
    """The claims the mappers would write for each user pass identity_from_claims, and the groups
    the hub admits (allowed_groups, admin_groups) exist with members."""
    (client,) = [c for c in realm["clients"] if c["clientId"] == AUTH["client_id"]]
    mappers = userinfo_mappers(realm, client)
    groups = {g["name"] for g in realm["groups"]}
    assert set(AUTH["allowed_groups"]) | set(AUTH["admin_groups"]) <= groups
    members = set()
    for user in realm["users"]:
        claims = {}
        for claim, mapper in mappers.items():
            attribute = mapper["config"].get("user.attribute")
            if mapper["protocolMapper"] == "oidc-usermodel-attribute-mapper":
                values = [int(v) for v in user["attributes"].get(attribute, [])]
                claims[claim] = values if mapper["config"]["multivalued"] == "true" else values[0]
            elif mapper["protocolMapper"] == "oidc-group-membership-mapper":
                claims[claim] = [path.rsplit("/", 1)[-1] for path in user["groups"]]
        identity = identity_from_claims(
            claims,
            username=user["username"],
            uid_claim=authenticator.uid_claim,
            gid_claim=authenticator.gid_claim,
            gids_claim=authenticator.gids_claim,
            groups_claim=authenticator.groups_claim,
            min_uid=authenticator.min_uid,
            min_gid=authenticator.min_gid,
        )
        assert identity.uid >= 1000 and set(identity.groups) <= groups
        members |= set(identity.groups)
        # walkthrough passwords must be changed at the first sign-in
        assert all(c["temporary"] for c in user["credentials"])
    assert set(AUTH["allowed_groups"]) <= members and set(AUTH["admin_groups"]) <= members
