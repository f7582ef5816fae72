"""The provider logout URL the hub sends a browser to at logout."""

from urllib.parse import parse_qs, urlparse

from beamhub.hub.auth import BeamAuthenticator


def test_end_session_redirect_carries_the_hint_and_the_way_back():
    auth = BeamAuthenticator(
        client_id="beamhub", end_session_url="http://sso/session/end", post_logout_redirect_url="http://hub/hub/login"
    )
    url = urlparse(auth.end_session_redirect("a.b.c"))
    assert url.path == "/session/end"
    assert parse_qs(url.query) == {
        "client_id": ["beamhub"],
        "id_token_hint": ["a.b.c"],
        "post_logout_redirect_uri": ["http://hub/hub/login"],
    }
    assert "id_token_hint" not in auth.end_session_redirect(None)


def test_no_end_session_url_means_no_provider_logout():
    assert BeamAuthenticator(client_id="beamhub").end_session_redirect("a.b.c") == ""
