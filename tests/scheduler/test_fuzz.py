"""Property-based fuzzing: no request body, however odd, makes the extender answer 5xx."""

import asyncio
import json
import threading

import pytest
import requests
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sched_objects import load, make_node, make_pod

from beamhub.scheduler.app import create_app
from beamhub.scheduler.load import StaticLoadSource
from beamhub.scheduler.settings import SchedulerSettings

EXAMPLES = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def base_url():
    """A real extender on a free loopback port, served from a background thread."""
    import time

    from beamhub.scheduler.load import LoadSnapshot

    snapshot = LoadSnapshot({"n0": load(cpu=0.3), "n1": load(cpu=0.9, gpus_requested=1.0)}, fetched_at=time.time())
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(SchedulerSettings(), load_source=StaticLoadSource(snapshot)))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
quantities = st.one_of(
    st.sampled_from(["1", "500m", "4Gi", "1e3", "-1", "0", "x", "1e999", ""]),
    st.integers(-5, 10**12),
    st.floats(),
    json_values,
)


@st.composite
def mutated_args(draw):
    """Realistic ExtenderArgs with one part replaced by something arbitrary."""
    pod = make_pod(cpu=draw(st.sampled_from(["1", "250m", None])), gpus=draw(st.integers(0, 4)))
    nodes = [make_node(f"n{i}", gpus=draw(st.sampled_from([0, 4]))) for i in range(draw(st.integers(0, 3)))]
    body = {"pod": pod}
    if draw(st.booleans()):
        body["nodes"] = {"items": nodes}
    else:
        body["nodenames"] = [n["metadata"]["name"] for n in nodes]
    target = draw(st.sampled_from(["cpu", "pod", "conditions", "labels", "items", "names", "status", "none"]))
    junk = draw(json_values)
    if target == "cpu":
        pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": draw(quantities)}}
    elif target == "pod":
        body["pod"] = junk
    elif target == "conditions" and nodes and "nodes" in body:
        body["nodes"]["items"][0]["status"]["conditions"] = junk
    elif target == "labels":
        pod["metadata"]["labels"] = junk
    elif target == "items" and "nodes" in body:
        body["nodes"]["items"].append(junk)
    elif target == "names" and "nodenames" in body:
        body["nodenames"].append(junk)
    elif target == "status" and nodes and "nodes" in body:
        body["nodes"]["items"][0]["status"]["allocatable"] = {"cpu": draw(quantities)}
    return body


def check(base_url, path, payload: bytes):
    reply = requests.post(base_url + path, data=payload, timeout=10)
    assert reply.status_code < 500, reply.text
    assert reply.status_code in (200, 400)
    body = reply.json()
    if reply.status_code == 400:
        assert isinstance(body["error"], str) and body["error"]
    return reply.status_code, body


@EXAMPLES
@given(path=st.sampled_from(["/filter", "/prioritize"]), body=mutated_args())
def test_structured_fuzz_never_5xx(base_url, path, body):
    status, reply = check(base_url, path, json.dumps(body).encode())
    if status == 200 and path == "/prioritize":
        assert all(0 <= h["score"] <= 10 for h in reply)


@EXAMPLES
@given(path=st.sampled_from(["/filter", "/prioritize"]), body=json_values)
def test_arbitrary_json_never_5xx(base_url, path, body):
    check(base_url, path, json.dumps(body).encode())


@settings(max_examples=60, deadline=None, database=None)
@given(path=st.sampled_from(["/filter", "/prioritize"]), payload=st.binary(max_size=64))
def test_arbitrary_bytes_never_5xx(base_url, path, payload):
    check(base_url, path, payload)
