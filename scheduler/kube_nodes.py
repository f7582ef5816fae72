"""Keep the node cache in step with the API server (list, then watch ``/api/v1/nodes``).

Needed for ``nodeCacheCapable: true``, where kube-scheduler sends node names only.  Talks plain
HTTP(S) with aiohttp: in a pod (``kube_api: in-cluster``) with the service account's token and
CA; elsewhere through any URL that reaches the API server, e.g. ``kubectl proxy``
(``kube_api: http://127.0.0.1:8001``).  The extender needs ``get``, ``list`` and ``watch`` on
``nodes``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from pathlib import Path

import aiohttp

from beamhub.scheduler.models import NodeInfo, WireFormatError
from beamhub.scheduler.node_cache import NodeCache

__all__ = ["NodeWatcher"]

log = logging.getLogger("beamhub.scheduler.nodes")
_SA = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class NodeWatcher:
    """List and watch Nodes into a :class:`NodeCache`, reconnecting on errors.

    Parameters
    ----------
    cache : NodeCache
    api : str
        ``"in-cluster"`` or the API server's base URL.
    retry_seconds : float
        Pause before reconnecting after an error.
    """

    def __init__(self, cache: NodeCache, api: str, retry_seconds: float = 5.0) -> None:
        self.cache = cache
        self.retry_seconds = retry_seconds
        self.synced = asyncio.Event()
        self._headers: dict[str, str] = {}
        self._ssl: ssl.SSLContext | None = None
        if api == "in-cluster":
            host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise RuntimeError("kube_api is 'in-cluster' but KUBERNETES_SERVICE_HOST is not set")
            self.base = f"https://{host}:{port}"
            self._headers["Authorization"] = f"Bearer {(_SA / 'token').read_text().strip()}"
            self._ssl = ssl.create_default_context(cafile=str(_SA / "ca.crt"))
        else:
            self.base = api.rstrip("/")
        self._task: asyncio.Task | None = None

    def _apply(self, kind: str, obj: dict) -> None:
        try:
            node = NodeInfo.from_json(obj)
        except WireFormatError as exc:
            log.warning("ignoring a Node the API server sent: %s", exc)
            return
        if kind == "DELETED":
            self.cache.remove(node.name)
        else:
            self.cache.update([node])

    async def _list(self, session: aiohttp.ClientSession) -> str:
        async with session.get(f"{self.base}/api/v1/nodes", ssl=self._ssl) as reply:
            reply.raise_for_status()
            body = await reply.json()
        names = set()
        for item in body.get("items", []):
            self._apply("ADDED", item)
            names.add(item.get("metadata", {}).get("name"))
        for stale in set(self.cache.names()) - names:
            self.cache.remove(stale)
        self.synced.set()
        return body.get("metadata", {}).get("resourceVersion", "")

    async def _watch(self, session: aiohttp.ClientSession, version: str) -> None:
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true"}
        async with session.get(
            f"{self.base}/api/v1/nodes",
            params=params,
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=600),
        ) as reply:
            reply.raise_for_status()
            async for line in reply.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":  # typically 410 Gone: our version is too old, list again
                    log.info("node watch ended by the API server: %s", obj.get("message"))
                    return
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._apply(kind, obj)

    async def _run(self) -> None:
        async with aiohttp.ClientSession(headers=self._headers) as session:
            while True:
                try:
                    version = await self._list(session)
                    await self._watch(session, version)
                except asyncio.CancelledError:
                    raise
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                    log.warning("node list/watch failed (%s); retrying in %g s", exc, self.retry_seconds)
                    await asyncio.sleep(self.retry_seconds)

    async def start(self) -> None:
        """Start listing and watching in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="beamhub-scheduler-nodes")

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
