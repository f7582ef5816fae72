"""A replayed or forged OAuth code (or state) gives a 400 "sign in again" page, never a 500."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from oauthenticator.oauth2 import OAuthCallbackHandler
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse

from beamhub.hub.auth import BeamCallbackHandler, ProviderUnavailable, SignInAgain


def _handler() -> BeamCallbackHandler:
    handler = object.__new__(BeamCallbackHandler)  # no request: only get()'s error mapping is exercised
    handler.application = SimpleNamespace(settings={"hub": SimpleNamespace(base_url="/hub/")})
    return handler


def _provider_answer(code: int) -> HTTPClientError:
    response = HTTPResponse(HTTPRequest("http://sso/token"), code)
    return HTTPClientError(code, response=response)


@pytest.mark.parametrize(
    "raised",
    [
        _provider_answer(400),  # invalid_grant: a replayed or forged code
        _provider_answer(401),  # client authentication refused
        web.HTTPError(400, "OAuth state mismatch"),  # a forged callback URL
        web.HTTPError(400, "OAuth state missing from cookies"),
    ],
)
async def test_a_refused_callback_is_a_400_sign_in_again_page(monkeypatch, raised):
    async def fail(self):
        raise raised

    monkeypatch.setattr(OAuthCallbackHandler, "get", fail)
    with pytest.raises(SignInAgain) as err:
        await _handler().get()
    assert err.value.status_code == 400
    assert 'href="/hub/login"' in err.value.jupyterhub_html_message
    assert "sign in again" in err.value.jupyterhub_message.lower()


async def test_an_unreachable_provider_is_still_a_503(monkeypatch):
    async def fail(self):
        raise ConnectionRefusedError()

    monkeypatch.setattr(OAuthCallbackHandler, "get", fail)
    with pytest.raises(ProviderUnavailable):
        await _handler().get()


async def test_a_403_refusal_stays_a_403(monkeypatch):
    async def fail(self):
        raise web.HTTPError(403, "not in an allowed group")

    monkeypatch.setattr(OAuthCallbackHandler, "get", fail)
    with pytest.raises(web.HTTPError) as err:
        await _handler().get()
    assert err.value.status_code == 403 and not isinstance(err.value, SignInAgain)
