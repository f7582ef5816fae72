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

Logout ends the sign-in on both sides (:class:`BeamLogoutHandler`): the hub rotates the
user's cookie id, so every hub cookie issued so far (a copied one too) stops working, then
sends the browser to the provider's ``end_session_url`` with the user's ``id_token_hint``
and ``post_logout_redirect_url`` (RP-initiated logout), which ends the provider's session
and sends the browser back to the hub, where the next visitor is asked to sign in.
"""

from __future__ import annotations

from urllib.parse import urlencode

from jupyterhub.utils import new_token
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLogoutHandler
from tornado import web
from traitlets import Integer, Unicode, default

from beamhub.hub.identity import AUTH_STATE_KEY, IdentityError, identity_from_claims


class BeamLogoutHandler(OAuthLogoutHandler):
    """Log out of the hub and of the provider; no hub cookie issued before the logout works after it."""

    async def handle_logout(self):
        await super().handle_logout()
        user = self.current_user  # still set here; JupyterHub forgets it before render_logout_page
        self._id_token, self._signed_in = None, user is not None
        if user is None:
            return
        auth_state = await user.get_auth_state() or {}
        self._id_token = auth_state.get("id_token")
        # JupyterHub's login cookie carries the user's cookie_id: a new one invalidates every cookie
        # given out so far, in this browser and in any other it was copied to
        user.orm_user.cookie_id = new_token()
        self.db.commit()
        self.log.info("Rotated the cookie id of %s at logout", user.name)

    async def render_logout_page(self):
        if not getattr(self, "_signed_in", False):  # nobody was signed in here: nothing to end at the provider
            self.redirect(self.settings["login_url"])
            return
        url = self.authenticator.end_session_redirect(getattr(self, "_id_token", None))
        if url:
            self.redirect(url)
            return
        await super().render_logout_page()


class BeamAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator that also maps the provider's claims to a POSIX identity."""

    logout_handler = BeamLogoutHandler

    login_service = Unicode("BeamHub SSO", config=True, help="Name on the login button.")
    end_session_url = Unicode(
        "", config=True,
        help="The provider's end_session_endpoint (OpenID Connect RP-initiated logout). When set, "
        "logging out of the hub also ends the sign-in at the provider, so the next visitor of this "
        "browser must sign in again. Empty: only the hub's cookie is cleared.",
    )
    post_logout_redirect_url = Unicode(
        "", config=True,
        help="Where the provider sends the browser after its logout (one of the client's registered "
        "post_logout_redirect_uris), typically the hub's /hub/login.",
    )

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

    def end_session_redirect(self, id_token: str | None) -> str:
        """The provider's logout URL for a user holding ``id_token`` (empty when there is no end_session_url)."""
        if not self.end_session_url:
            return ""
        params = {"client_id": self.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        if self.post_logout_redirect_url:
            params["post_logout_redirect_uri"] = self.post_logout_redirect_url
        separator = "&" if "?" in self.end_session_url else "?"
        return f"{self.end_session_url}{separator}{urlencode(params)}"

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
