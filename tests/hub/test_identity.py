"""Claims -> POSIX identity: complete, safe identities pass; everything else is refused by name."""

import pytest

from beamhub.hub.identity import Identity, IdentityError, identity_from_claims

GOOD = {
    "preferred_username": "alice",
    "uid": 2001,
    "gid": 2001,
    "gids": [3001, "3002"],
    "groups": ["spi", "tomo"],
    "email": "alice@example.org",
}


def test_complete_identity_round_trips_through_auth_state():
    identity = identity_from_claims(GOOD, username="alice")
    assert identity == Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"), "alice@example.org")
    restored = Identity.from_auth_state({"beamhub": identity.to_auth_state()})
    assert restored == identity
    env = identity.environment()
    assert env["BEAMHUB_UID"] == "2001" and env["BEAMHUB_GROUPS"] == "spi,tomo"
    assert env["BEAMHUB_GIDS"] == "3001,3002"


def test_numeric_strings_are_accepted():
    identity = identity_from_claims({**GOOD, "uid": "2005", "gid": " 2005 "}, username="alice")
    assert (identity.uid, identity.gid) == (2005, 2005)


def test_custom_claim_names():
    claims = {"uidNumber": 4000, "gidNumber": 4000, "memberOf": ["x"]}
    identity = identity_from_claims(
        claims, username="c", uid_claim="uidNumber", gid_claim="gidNumber", groups_claim="memberOf"
    )
    assert identity.groups == ("x",)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"uid": None}, ["no user id", "'uid'"]),
        ({"gid": None}, ["no group id", "'gid'"]),
        ({"uid": 0}, ["uid 0", "root"]),
        ({"gid": 0}, ["gid 0"]),
        ({"uid": 999}, ["below 1000"]),
        ({"gid": 42}, ["below 100"]),
        ({"uid": "alice"}, ["not a number"]),
        ({"uid": True}, ["not a number"]),
        ({"gids": "3001"}, ["must be a list"]),
        ({"gids": ["x"]}, ["'x'", "not a number"]),
        ({"gids": [0]}, ["not allowed"]),
        # min_gid applies to supplementary gids too: a session holding disk (6) or shadow (42) is refused
        ({"gids": [3001, 6]}, ["supplementary gid 6", "below 100"]),
        ({"gids": ["42"]}, ["supplementary gid 42", "below 100"]),
        ({"groups": "spi"}, ["list of names"]),
        ({"groups": [1, 2]}, ["list of names"]),
    ],
)
def test_missing_malformed_or_unsafe_claims_are_refused(change, words):
    claims = {**GOOD, **change}
    claims = {k: v for k, v in claims.items() if v is not None}
    with pytest.raises(IdentityError) as err:
        identity_from_claims(claims, username="alice")
    for word in words:
        assert word in str(err.value)


def test_no_username_is_refused():
    with pytest.raises(IdentityError, match="no user name"):
        identity_from_claims(GOOD, username="")


def test_absent_auth_state_gives_no_identity():
    assert Identity.from_auth_state(None) is None
    assert Identity.from_auth_state({"access_token": "x"}) is None
