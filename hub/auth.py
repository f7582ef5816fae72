"""BeamAuthenticator: single sign-on through any OAuth2/OIDC provider, POSIX identity from claims.

Built on oauthenticator's GenericOAuthenticator and overriding only its
documented seam (``update_auth_model``): the provider's userinfo claims give
the username, groups, uid, gid and supplementary gids; they are checked
(:func:`~beamhub.hub.identity.identity_from_claims`) and stored in auth_state
under ``"beamhub"`` for the spawners.  A login whose identity is missing or
unsafe is refused with a readable 403 page, never a traceback.

Groups come from ``auth_state_groups_key`` (default ``oauth_user.groups``);
``allowed_groups`` and ``admin_groups`` work as in oauthenticator.  Tokens
are refreshed before every spawn (``refresh_pre_spawn``) so a session never
starts on a revoked account.
"""

from __future__ import annotations

from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets import Integer, Unicode, default

from beamhub.hub.identity import AUTH_STATE_KEY, IdentityError, identity_from_claims


class BeamAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator that also maps the provider's claims to a POSIX identity."""

    login_service = Unicode("BeamHub SSO", config=True, help="Name on the login button.")

    uid_claim = Unicode("uid", config=True, help="Userinfo claim holding the numeric user id.")
    gid_claim = Unicode("gid", config=True, help="Userinfo claim holding the primary group id.")
    gids_claim = Unicode(
        "gids", config=True, help="Userinfo claim holding the list of supplementary group ids."
    )
    groups_claim = Unicode(
        "groups", config=True, help="Userinfo claim holding the list of group names."
    )
    min_uid = Integer(
        1000, config=True,
        help="Smallest uid accepted; lower ids belong to system accounts and are refused.",
    )
    min_gid = Integer(
        100, config=True,
        help="Smallest gid accepted, primary and supplementary; lower ids belong to system groups "
        "(a session holding one could use its files) and are refused.",
    )

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("scope")
    def _scope_default(self):
        return ["openid", "profile", "email", "groups", "posix", "offline_access"]

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("auth_state_groups_key")
    def _auth_state_groups_key_default(self):
        return f"{self.user_auth_state_key}.{self.groups_claim}"

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self):
        return True

    @default("auth_refresh_age")
    def _auth_refresh_age_default(self):
        return 300

    async def update_auth_model(self, auth_model):
        """Check the POSIX identity in the claims and keep it in auth_state (or refuse with 403)."""
        auth_model = await super().update_auth_model(auth_model)
        auth_state = auth_model["auth_state"]
        claims = auth_state.get(self.user_auth_state_key) or {}
        try:
            identity = identity_from_claims(
                claims,
                username=auth_model["name"],
                uid_claim=self.uid_claim,
                gid_claim=self.gid_claim,
                gids_claim=self.gids_claim,
                groups_claim=self.groups_claim,
                min_uid=self.min_uid,
                min_gid=self.min_gid,
            )
        except IdentityError as exc:
            self.log.warning("Refusing login of %s: %s", auth_model["name"], exc)
            raise web.HTTPError(
                403,
                reason="Sign-in refused",
                log_message=(
                    f"Your account cannot be used on BeamHub: {exc}. "
                    "Ask your facility's user office to complete your account."
                ),
            ) from None
        auth_state[AUTH_STATE_KEY] = identity.to_auth_state()
        return auth_model
