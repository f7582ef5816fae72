"""The node watcher against a fake API server speaking list + watch on /api/v1/nodes."""

import asyncio
import json
import time

from aiohttp import web
from aiohttp.test_utils import TestServer
from sched_objects import make_node

from beamhub.scheduler.kube_nodes import NodeWatcher
from beamhub.scheduler.node_cache import NodeCache


async def test_list_then_watch_updates_and_deletes():
    changed = make_node("node-b", conditions={"DiskPressure": "True"})
    changed["metadata"]["resourceVersion"] = "101"
    seen_versions = []

    async def nodes(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "1":
            return web.json_response(
                {
                    "kind": "NodeList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": "100"},
                    "items": [make_node("node-a"), make_node("node-b"), make_node("node-c")],
                }
            )
        seen_versions.append(request.query["resourceVersion"])
        reply = web.StreamResponse()
        await reply.prepare(request)
        for event in (
            {"type": "MODIFIED", "object": changed},
            {"type": "BOOKMARK", "object": {"kind": "Node", "metadata": {"resourceVersion": "102"}}},
            {"type": "DELETED", "object": make_node("node-a")},
        ):
            await reply.write(json.dumps(event).encode() + b"\n")
        await asyncio.sleep(30)  # the watch stays open
        return reply

    app = web.Application()
    app.router.add_get("/api/v1/nodes", nodes)
    server = TestServer(app)
    await server.start_server()
    cache = NodeCache()
    cache.update([])
    watcher = NodeWatcher(cache, str(server.make_url("/")).rstrip("/"), retry_seconds=0.1)
    await watcher.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sorted(cache.names()) != ["node-b", "node-c"]:
            await asyncio.sleep(0.05)
        assert sorted(cache.names()) == ["node-b", "node-c"]
        (node_b,) = cache.lookup(["node-b"])
        assert node_b.conditions["DiskPressure"] == "True" and node_b.resource_version == "101"
        assert seen_versions == ["100"]
    finally:
        await watcher.stop()
        await server.close()
