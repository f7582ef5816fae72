"""Node facts the extender remembers, for ``nodeCacheCapable`` requests that send names only."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from beamhub.errors import UsageError
from beamhub.scheduler.models import NodeInfo, WireFormatError

__all__ = ["NodeCache"]


class NodeCache:
    """Latest :class:`NodeInfo` per node name.

    Fed by every full-mode request (kube-scheduler sends whole Node objects when the extender
    is not ``nodeCacheCapable``), by :class:`beamhub.scheduler.kube_nodes.NodeWatcher` when
    ``kube_api`` is set, and optionally preloaded from a ``v1.NodeList`` file.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def parse(self, obj, where: str = "node") -> NodeInfo:
        """:meth:`NodeInfo.from_json` that reuses the cached facts of an unchanged Node.

        A Node with the same name and a non-empty ``resourceVersion`` equal to the cached one is
        the same object (the API server bumps the version on every change), so parsing is skipped.
        """
        if isinstance(obj, dict):
            meta = obj.get("metadata")
            if isinstance(meta, dict):
                cached = self._nodes.get(meta.get("name"))  # type: ignore[arg-type]
                version = meta.get("resourceVersion")
                if cached is not None and version and cached.resource_version == version:
                    return cached
        return NodeInfo.from_json(obj, where)

    def update(self, nodes: list[NodeInfo]) -> None:
        """Remember these nodes (newer facts replace older ones)."""
        for node in nodes:
            self._nodes[node.name] = node

    def remove(self, name: str) -> None:
        """Forget a node (deleted from the cluster)."""
        self._nodes.pop(name, None)

    def names(self) -> list[str]:
        """Names of every known node."""
        return list(self._nodes)

    def lookup(self, names: list[str]) -> list[NodeInfo | None]:
        """The cached facts for ``names``, None where a node is unknown."""
        get = self._nodes.get
        return [get(name) for name in names]

    def all(self) -> list[NodeInfo]:
        """Every known node, sorted by name."""
        return [self._nodes[k] for k in sorted(self._nodes)]

    def load_file(self, path: str | Path) -> int:
        """Preload from a JSON or YAML ``v1.NodeList`` (or a list of Nodes); returns the count.

        Raises
        ------
        UsageError
            If the file cannot be read or holds no valid Node objects; the message names it.
        """
        path = Path(path)
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read nodes file {path}: {exc}") from None
        items = data.get("items") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise UsageError(f"nodes file {path}: expected a v1.NodeList with 'items' or a list of Nodes")
        try:
            nodes = [NodeInfo.from_json(item, f"{path.name}: items[{i}]") for i, item in enumerate(items)]
        except WireFormatError as exc:
            raise UsageError(f"nodes file {exc}") from None
        self.update(nodes)
        return len(nodes)
