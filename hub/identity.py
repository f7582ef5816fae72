"""A user's POSIX identity and groups, read from SSO claims and kept in auth_state.

The SSO provider is the one source of truth for who a user is on the
filesystem: uid, primary gid, supplementary gids and groups.  Both spawners
read the :class:`Identity` back from auth_state, so a pod (or a local process)
runs as exactly the identity the provider vouched for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

AUTH_STATE_KEY = "beamhub"


class IdentityError(ValueError):
    """The provider's claims do not give a complete, safe POSIX identity."""


@dataclass(frozen=True)
class Identity:
    """Who a user is: name, numeric ids and group names."""

    username: str
    uid: int
    gid: int
    gids: tuple[int, ...] = ()
    groups: tuple[str, ...] = ()
    email: str | None = None

    def to_auth_state(self) -> dict[str, Any]:
        data = asdict(self)
        data["gids"] = list(self.gids)
        data["groups"] = list(self.groups)
        return data

    @classmethod
    def from_auth_state(cls, auth_state: Mapping[str, Any] | None) -> Identity | None:
        """The identity stored by :class:`~beamhub.hub.auth.BeamAuthenticator`, or None."""
        data = (auth_state or {}).get(AUTH_STATE_KEY)
        if not data:
            return None
        return cls(
            username=data["username"],
            uid=int(data["uid"]),
            gid=int(data["gid"]),
            gids=tuple(int(g) for g in data.get("gids", ())),
            groups=tuple(data.get("groups", ())),
            email=data.get("email"),
        )

    def environment(self) -> dict[str, str]:
        """BEAMHUB_* variables that make the identity visible inside a session."""
        return {
            "BEAMHUB_USER": self.username,
            "BEAMHUB_UID": str(self.uid),
            "BEAMHUB_GID": str(self.gid),
            "BEAMHUB_GIDS": ",".join(map(str, self.gids)),
            "BEAMHUB_GROUPS": ",".join(self.groups),
        }


def _int_claim(claims: Mapping[str, Any], key: str, what: str) -> int:
    if key not in claims or claims[key] in (None, ""):
        raise IdentityError(f"the sign-in provider sent no {what} (claim '{key}')")
    value = claims[key]
    if isinstance(value, bool):
        raise IdentityError(f"the {what} (claim '{key}') is not a number: {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise IdentityError(f"the {what} (claim '{key}') is not a number: {value!r}") from None
    return number


def identity_from_claims(
    claims: Mapping[str, Any],
    *,
    username: str,
    uid_claim: str = "uid",
    gid_claim: str = "gid",
    gids_claim: str = "gids",
    groups_claim: str = "groups",
    min_uid: int = 1000,
    min_gid: int = 100,
) -> Identity:
    """Build and check an :class:`Identity` from userinfo/ID-token claims.

    Refuses (``IdentityError``, with a message a person can act on) a missing
    or non-numeric uid/gid, uid 0 or gid 0 (root), ids below ``min_uid`` /
    ``min_gid`` (system accounts; ``min_gid`` applies to the supplementary gids
    too), and malformed group lists.
    """
    if not username:
        raise IdentityError("the sign-in provider sent no user name")
    uid = _int_claim(claims, uid_claim, "user id (uid)")
    gid = _int_claim(claims, gid_claim, "group id (gid)")
    if uid == 0:
        raise IdentityError("the account maps to uid 0 (root); BeamHub never starts sessions as root")
    if gid == 0:
        raise IdentityError("the account maps to gid 0 (root's group); BeamHub refuses it")
    if uid < min_uid:
        raise IdentityError(f"uid {uid} is below {min_uid}, the range of system accounts")
    if gid < min_gid:
        raise IdentityError(f"gid {gid} is below {min_gid}, the range of system groups")
    raw_gids = claims.get(gids_claim) or []
    if not isinstance(raw_gids, (list, tuple)):
        raise IdentityError(f"the supplementary groups (claim '{gids_claim}') must be a list, not {raw_gids!r}")
    gids = []
    for g in raw_gids:
        try:
            number = int(g)
        except (TypeError, ValueError):
            raise IdentityError(f"supplementary gid {g!r} (claim '{gids_claim}') is not a number") from None
        if isinstance(g, bool) or number <= 0:
            raise IdentityError(f"supplementary gid {g!r} (claim '{gids_claim}') is not allowed")
        if number < min_gid:
            # a session holding a system group (disk, shadow, docker...) could use it like its owner
            raise IdentityError(f"supplementary gid {number} is below {min_gid}, the range of system groups")
        gids.append(number)
    raw_groups = claims.get(groups_claim) or []
    if not isinstance(raw_groups, (list, tuple)) or not all(isinstance(g, str) for g in raw_groups):
        raise IdentityError(f"the groups (claim '{groups_claim}') must be a list of names, not {raw_groups!r}")
    email = claims.get("email")
    return Identity(
        username=username,
        uid=uid,
        gid=gid,
        gids=tuple(dict.fromkeys(gids)),
        groups=tuple(dict.fromkeys(raw_groups)),
        email=email if isinstance(email, str) else None,
    )
