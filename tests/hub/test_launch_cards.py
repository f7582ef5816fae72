"""The launch page's cards: group filtering, last used first, and free GPUs from the scheduler's /summary."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from beamhub.hub.identity import Identity
from beamhub.hub.local import LocalBeamSpawner

SUMMARY = {
    "generated": 0,
    "stale": False,
    "free_gpus": 3,
    "total_gpus": 8,
    "classes": [{"name": "gpu-a100", "nodes": 2, "free_cpu": 12.5, "free_gpus": 3, "total_gpus": 8}],
}


@pytest.fixture
def summary_server():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(SUMMARY).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/summary"
    server.shutdown()


def _spawner(identity: Identity, last: str | None = None, **config) -> LocalBeamSpawner:
    spawner = LocalBeamSpawner(**config)
    spawner.user = SimpleNamespace(name=identity.username, admin=False, groups=[])
    spawner.orm_spawner = SimpleNamespace(user_options={"environment": last} if last else {}, server=None, name="")
    spawner.identity = identity
    return spawner


def _cards(html: str) -> list[str]:
    return re.findall(r'data-environment="([^"]+)"', html)


async def test_cards_follow_groups_and_put_the_last_used_first():
    bob = Identity("bob", 2002, 2002, (), ("tomo",))
    html = await _spawner(bob, last="dl-gpu")._render_launch_cards()
    assert _cards(html) == ["dl-gpu", "scipy", "tomo"]
    assert "last used" in html and "uid 2002" in html
    assert "GPUs free now" not in html


async def test_gpu_cards_show_free_gpus_from_the_scheduler(summary_server):
    alice = Identity("alice", 2001, 2001, (), ("spi", "tomo"))
    # local_gpus=1: a platform whose sessions have a GPU (else the cards say there is none here)
    html = await _spawner(alice, scheduler_summary_url=summary_server, local_gpus=1)._render_launch_cards()
    assert html.count("3 of 8 GPUs free now") == 2  # the two GPU environments, not the CPU ones


async def test_page_renders_when_the_scheduler_is_down():
    alice = Identity("alice", 2001, 2001, (), ("spi", "tomo"))
    spawner = _spawner(alice, scheduler_summary_url="http://127.0.0.1:9/summary", scheduler_summary_timeout=0.5)
    html = await spawner._render_launch_cards()
    assert len(_cards(html)) == 5 and "GPUs free now" not in html
