"""Render the BeamHub chart without a cluster, and check objects against the Kubernetes API schema.

Rendering uses Helm's own Go engine (the Helm v4 SDK) through the ``helm-python-sdk`` wheel: no
``helm`` binary, no API server (``lookup`` returns nothing), and no chart repository, since only
our own templates are rendered: the ``jupyterhub`` dependency is declared but not fetched
(``helm dependency update`` is the operator's step, see deploy/README.md).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import all_versions, schema_contents
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "beamhub"
EXAMPLES = sorted((REPO / "deploy" / "examples").glob("values-*.yaml"))
RELEASE, NAMESPACE = "bh", "beamhub"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the schema
# package knows: an object must be valid on both, so no API removed in between is used.
KUBE_VERSIONS = ("1.28.0", all_versions()[-1])

# Helm logs an INFO line for the catalog symlink on every load; keep test output quiet.
logging.getLogger("helm_python.native").setLevel(logging.WARNING)


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would give it (schema checked first)."""
    return dict(_render(json.dumps(values, sort_keys=True)))


@functools.lru_cache(maxsize=64)
def _render(values_json: str) -> tuple[tuple[str, str], ...]:
    # the same values are rendered by several tests; a failed render is not cached
    with helm.Chart.load(str(CHART)) as chart:
        return tuple(chart.render(json.loads(values_json), name=RELEASE, namespace=NAMESPACE).items())


def merge_values(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values an install would use: the chart's defaults with ``values`` over them."""
    return json.loads(_merge_values(json.dumps(values, sort_keys=True)))


@functools.lru_cache(maxsize=64)
def _merge_values(values_json: str) -> str:
    with helm.Chart.load(str(CHART)) as chart:
        return json.dumps(chart.merge_values(json.loads(values_json)))


def render_objects(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders, in template order."""
    objects = []
    for path, text in sorted(render(values).items()):
        # our templates only: after a local `helm dependency update` the jupyterhub chart's
        # templates (under beamhub/charts/) render too, and they are not ours to check
        if not path.startswith(f"{CHART.name}/templates/") or path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def validate_schema(values: dict[str, Any]) -> None:
    """Raise helm_python.HelmValuesError when ``values`` break values.schema.json."""
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)


@functools.cache
def _validator(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    """The strict JSON-schema validator of one kind, as kubernetes_validate.validate builds it
    (the same schema files), kept across calls: parsing the definitions is most of the cost."""
    if version not in all_versions():
        raise ValueError(f"kubernetes-validate {kubernetes_validate.__version__} has no schema for {version}")
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        raise AssertionError(f"Kubernetes {version} has no {kind} in {api_version}") from None
    definitions = schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def object_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Why ``obj`` is not a valid object of Kubernetes ``version`` (strict: unknown fields count)."""
    validator = _validator(version, obj["apiVersion"], obj["kind"])
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]
