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

The provider being down is not the hub being down (:class:`ProviderUnavailable`): a sign-in
is checked against ``provider_check_url`` before the browser is sent to the provider, and a
provider that does not answer (then or during the callback) gets a readable 503 "sign-in
unavailable, retry" page instead of a dead link or a traceback; users already signed in keep
their sign-in (a refresh that cannot reach the provider keeps what the hub has), and their
running sessions never talk to the provider at all.

A callback the provider refuses — a replayed, forged or expired code (``invalid_grant``), a
state that does not match the browser's cookie, a cancelled sign-in — is the browser's
problem, not the hub's: a 400 "sign in again" page with a link to a fresh sign-in
(:class:`SignInAgain`), never a 500.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from jupyterhub.utils import new_token, url_path_join
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler, OAuthLogoutHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Integer, Unicode, default

from beamhub.hub.identity import AUTH_STATE_KEY, IdentityError, identity_from_claims


class ProviderUnavailable(web.HTTPError):
    """The SSO provider does not answer: a 503 page saying so, with a retry link (no traceback)."""

    def __init__(self, retry_url: str, why: str = ""):
        super().__init__(
            503,
            reason="Sign-in unavailable",
            log_message=f"the SSO provider does not answer{f' ({why})' if why else ''}",
        )
        self.headers = {"Retry-After": "10"}
        self.jupyterhub_message = (
            "Sign-in is unavailable right now: the sign-in service is not answering. "
            "Sessions that are already running keep running. Retry in a moment."
        )
        self.jupyterhub_html_message = (
            f"{escape(self.jupyterhub_message)}</p>"
            f'<p><a id="retry-sign-in" class="btn btn-primary" href="{escape(retry_url)}">Retry sign-in</a>'
        )


class SignInAgain(web.HTTPError):
    """A sign-in callback that cannot complete (replayed or forged code, state mismatch): 400, with a link."""

    def __init__(self, login_url: str, why: str = ""):
        super().__init__(
            400, reason="Sign in again", log_message=f"sign-in callback refused{f' ({why})' if why else ''}"
        )
        self.jupyterhub_message = "This sign-in link has expired or was already used. Please sign in again."
        self.jupyterhub_html_message = (
            f"{escape(self.jupyterhub_message)}</p>"
            f'<p><a id="sign-in-again" class="btn btn-primary" href="{escape(login_url)}">Sign in again</a>'
        )


def _refused_by_provider(exc: Exception) -> bool:
    """True when the provider answered the code exchange with a client error (invalid_grant and kin)."""
    return isinstance(exc, HTTPClientError) and exc.response is not None and 400 <= exc.code < 500


def _unreachable(exc: Exception) -> bool:
    """True when ``exc`` means the provider was not reached at all (refused, timed out, DNS), not a refusal."""
    if isinstance(exc, HTTPClientError):
        return exc.code == 599 or exc.response is None
    return isinstance(exc, (OSError, TimeoutError))


class BeamLoginHandler(OAuthLoginHandler):
    """Send the browser to the provider only when the provider answers; else the sign-in unavailable page."""

    async def get(self):
        problem = await self.authenticator.provider_problem()
        if problem:
            next_url = self.get_argument("next", "")
            retry = url_path_join(self.hub.base_url, "login") + (
                f"?{urlencode({'next': next_url})}" if next_url else ""
            )
            raise ProviderUnavailable(retry, problem)
        return super().get()


class BeamCallbackHandler(OAuthCallbackHandler):
    """The OAuth callback; a provider that stops answering half-way gets the same readable page."""

    async def get(self):
        login = url_path_join(self.hub.base_url, "login")
        try:
            return await super().get()
        except SignInAgain:
            raise
        except web.HTTPError as exc:
            if exc.status_code == 400:  # oauthenticator's state/code/error checks
                raise SignInAgain(login, exc.log_message or "") from None
            raise
        except Exception as exc:
            if _refused_by_provider(exc):
                raise SignInAgain(login, f"the provider answered {exc.code} to the code") from None
            if not _unreachable(exc):
                raise
            raise ProviderUnavailable(login, str(exc)) from None


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

    login_handler = BeamLoginHandler
    callback_handler = BeamCallbackHandler
    logout_handler = BeamLogoutHandler

    login_service = Unicode("BeamHub SSO", config=True, help="Name on the login button.")
    end_session_url = Unicode(
        "",
        config=True,
        help="The provider's end_session_endpoint (OpenID Connect RP-initiated logout). When set, "
        "logging out of the hub also ends the sign-in at the provider, so the next visitor of this "
        "browser must sign in again. Empty: only the hub's cookie is cleared.",
    )
    post_logout_redirect_url = Unicode(
        "",
        config=True,
        help="Where the provider sends the browser after its logout (one of the client's registered "
        "post_logout_redirect_uris), typically the hub's /hub/login.",
    )

    uid_claim = Unicode("uid", config=True, help="Userinfo claim holding the numeric user id.")
    gid_claim = Unicode("gid", config=True, help="Userinfo claim holding the primary group id.")
    gids_claim = Unicode("gids", config=True, help="Userinfo claim holding the list of supplementary group ids.")
    groups_claim = Unicode("groups", config=True, help="Userinfo claim holding the list of group names.")
    min_uid = Integer(
        1000,
        config=True,
        help="Smallest uid accepted; lower ids belong to system accounts and are refused.",
    )
    min_gid = Integer(
        100,
        config=True,
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

    provider_check_url = Unicode(
        "",
        config=True,
        help="A URL of the provider fetched before a browser is sent there to sign in (its OpenID "
        "discovery document, say). When it does not answer, the browser gets a 'sign-in unavailable, "
        "retry' page instead of a dead link. Empty: no check.",
    )
    provider_check_timeout = Float(
        3.0,
        config=True,
        help="Seconds to wait for provider_check_url before calling the provider unavailable.",
    )

    async def provider_problem(self) -> str:
        """Why the provider cannot take a sign-in now ('' when it answers or nothing is checked)."""
        if not self.provider_check_url:
            return ""
        request = HTTPRequest(
            self.provider_check_url,
            connect_timeout=self.provider_check_timeout,
            request_timeout=self.provider_check_timeout,
        )
        try:
            await AsyncHTTPClient().fetch(request)
        except HTTPClientError as exc:
            if exc.code < 500 and exc.code != 599:
                return ""  # it answered: whatever it thinks of this URL, it is up
            return str(exc)
        except (OSError, TimeoutError) as exc:
            return str(exc) or type(exc).__name__
        return ""

    async def refresh_user(self, user, handler=None, **kwargs):
        """oauthenticator's refresh, except that a provider that cannot be reached keeps the user signed in.

        A refused or expired token still signs the user out (or stops a spawn); only "nobody
        answered" is forgiven, so a provider restart does not sign everybody out of the hub.
        """
        try:
            return await super().refresh_user(user, handler, **kwargs)
        except Exception as exc:
            if not _unreachable(exc):
                raise
            self.log.warning("Keeping %s signed in: the SSO provider cannot be reached (%s)", user.name, exc)
            return True

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
                # as JupyterHub will name the user (lower case, username_map): the name BEAMHUB_USER,
                # the home folder's subPath and the home-init step all use must be that one
                username=self.normalize_username(auth_model["name"]),
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
