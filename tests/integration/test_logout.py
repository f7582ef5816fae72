"""Logout ends the sign-in: at the provider (RP-initiated logout) and for every copy of the hub cookie."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from sso_client import dump_logs, login

pytestmark = pytest.mark.integration

SIGN_IN_FORM = re.compile(r'action="(/interaction/[^"]+/login)"')


def _copy(session: requests.Session) -> requests.Session:
    """Another client holding the same cookies, as someone who copied them would."""
    thief = requests.Session()
    for cookie in session.cookies:
        thief.cookies.set_cookie(cookie)
    return thief


def test_logout_ends_the_sign_in_and_a_copied_cookie_stops_working(platform):
    session, page = login(platform.url, "bob", "bob")
    assert page.status_code == 200 and "/hub/spawn" in page.url, dump_logs(platform)
    thief = _copy(session)
    assert thief.get(f"{platform.url}/hub/home", allow_redirects=False, timeout=30).status_code == 200

    out = session.get(f"{platform.url}/hub/logout", timeout=30)
    # the hub sent the browser to the provider's end_session endpoint with the ID token as a hint
    end_session = next(r.headers["Location"] for r in out.history if "/session/end" in r.headers.get("Location", ""))
    query = parse_qs(urlparse(end_session).query)
    assert query["id_token_hint"][0].count(".") == 2  # a JWT
    assert query["post_logout_redirect_uri"] == [f"{platform.url}/hub/login"]
    # the provider's sign-out page is ours and submits itself (valid hint); a browser runs the script
    assert out.status_code == 200 and "Signing you out of BeamHub" in out.text, out.text[-1500:]
    assert "BeamHub SSO" in out.text and "document.getElementById('op.logoutForm').submit()" in out.text
    action = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)"', out.text).group(1)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', out.text))
    assert fields["logout"] == "yes"
    after = session.post(action, data=fields, timeout=30)
    # back at the hub, which asks this browser to sign in again: the provider's sign-in form
    assert any(r.headers.get("Location", "").startswith(f"{platform.url}/hub/login") for r in after.history)
    assert SIGN_IN_FORM.search(after.text), (after.url, after.text[-1500:])

    # the copied hub cookie no longer works, for pages or the API
    home = thief.get(f"{platform.url}/hub/home", allow_redirects=False, timeout=30)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"]
    assert thief.get(f"{platform.url}/hub/api/user", timeout=30).status_code == 403
    # the provider's session is over too: the same browser is asked to sign in, not let back in
    again = session.get(f"{platform.url}/hub/home", timeout=30)
    assert SIGN_IN_FORM.search(again.text) and "/interaction/" in again.url
    # and a fresh browser lands on the sign-in page
    fresh = requests.get(platform.url, timeout=30)
    assert SIGN_IN_FORM.search(fresh.text) and "BeamHub sign-in" in fresh.text


def test_logout_without_a_hub_session_goes_to_the_sign_in(platform):
    page = requests.get(f"{platform.url}/hub/logout", timeout=30)
    assert page.status_code == 200 and SIGN_IN_FORM.search(page.text)
    assert not any("/session/end" in r.headers.get("Location", "") for r in page.history)
