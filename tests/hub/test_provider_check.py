"""The hub's check of the SSO provider before a sign-in, and what counts as 'unreachable'."""

from tornado import web
from tornado.httpclient import HTTPClientError

from beamhub.hub.auth import BeamAuthenticator, ProviderUnavailable, _unreachable
from beamhub.hub.platform import free_port


async def test_a_closed_port_is_a_problem_and_an_answer_is_not():
    closed = BeamAuthenticator(provider_check_url=f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration")
    assert await closed.provider_problem()

    class Discovery(web.RequestHandler):
        def get(self):
            self.write({"issuer": "x"})

    port = free_port()
    server = web.Application([(r"/.well-known/openid-configuration", Discovery)]).listen(port, address="127.0.0.1")
    try:
        up = BeamAuthenticator(provider_check_url=f"http://127.0.0.1:{port}/.well-known/openid-configuration")
        assert await up.provider_problem() == ""
        not_found = BeamAuthenticator(provider_check_url=f"http://127.0.0.1:{port}/nothing-here")
        assert await not_found.provider_problem() == ""  # it answered: it is up
    finally:
        server.stop()
    assert await BeamAuthenticator().provider_problem() == ""  # nothing configured, nothing checked


def test_only_no_answer_counts_as_unreachable():
    assert _unreachable(ConnectionRefusedError())
    assert _unreachable(HTTPClientError(599))
    assert not _unreachable(HTTPClientError(401, response=object()))
    assert not _unreachable(ValueError("bad token"))


def test_the_unavailable_page_is_a_503_with_a_retry_link():
    exc = ProviderUnavailable("/hub/login?next=%2Fhub%2Fspawn", "refused")
    assert exc.status_code == 503 and exc.headers["Retry-After"]
    assert 'href="/hub/login?next=%2Fhub%2Fspawn"' in exc.jupyterhub_html_message
    assert "Sign-in is unavailable" in exc.jupyterhub_message
