"""One catalog format: the hub's validator and the chart's values schema accept and refuse alike.

The format is written once (:data:`beamhub.hub.catalog.ENVIRONMENT_SCHEMA`); the chart's
values.schema.json carries it, written by deploy/helm/generate_schema.py.  Each example entry
below goes to both judges — the hub (:func:`parse_catalog`) and Helm's own schema check of the
chart's values — and both must give the same verdict.  The rules JSON Schema cannot state are
listed apart (HUB_ONLY): the chart lets them through and the hub refuses them at start.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re

import helm_python as helm
import pytest
import yaml
from deploy_render import CHART, REPO, validate_schema

from beamhub.hub.catalog import DEFAULT_CATALOG, ENVIRONMENT_SCHEMA, CatalogError, parse_catalog
from beamhub.quantity import parse_quantity

_spec = importlib.util.spec_from_file_location("generate_schema", REPO / "deploy" / "helm" / "generate_schema.py")
generate_schema = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate_schema)

BASE = {
    "slug": "tomo",
    "title": "Tomography",
    "description": "CT",
    "image": "ghcr.io/beamhub/tomo:0.1.0",
    "kind": "cpu",
    "qos": "burstable",
    "groups": ["tomo"],
    "resources": {"cpu": {"guarantee": "500m", "limit": 4}, "memory": {"guarantee": "4Gi", "limit": "16Gi"}},
    "mounts": [
        {"name": "raw", "mount_path": "/data/raw", "read_only": True, "groups": ["tomo"], "local_path": "data/raw"}
    ],
    "local": {"env": {"BEAMHUB_BACKEND": "numpy", "THREADS": 4}, "args": ["--debug"]},
    "node_selector": {"beamhub.io/class": "cpu"},
    "default": True,
}
GPU = {
    **BASE,
    "slug": "gpu",
    "kind": "gpu",
    "qos": "guaranteed",
    "resources": {"cpu": {"guarantee": 4, "limit": 4}, "memory": {"guarantee": "16Gi", "limit": "16Gi"}, "gpus": 1},
}


def _with(base: dict, path: str, value) -> dict:
    """``base`` with the field at dotted ``path`` set to ``value`` (``KeyError``: removed)."""
    entry = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = entry
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return entry


# (entry, what it shows); both judges must agree on each
EXAMPLES = [
    (BASE, "a full cpu entry"),
    (GPU, "a gpu entry"),
    (_with(BASE, "description", KeyError), "optional keys absent"),
    (_with(BASE, "resources.cpu.guarantee", KeyError), "no guarantee"),
    (_with(BASE, "resources.memory.limit", "1.8e10"), "an exponent quantity"),
    (_with(BASE, "resources.memory.limit", 17179869184), "memory as a number of bytes"),
    (_with(BASE, "resources.memory.limit", "16G"), "decimal suffix"),
    (_with(BASE, "slug", "Not A Slug"), "slug with capitals and spaces"),
    (_with(BASE, "slug", "-tomo"), "slug starting with a dash"),
    (_with(BASE, "slug", "a" * 41), "slug over 40 characters"),
    (_with(BASE, "title", KeyError), "title missing"),
    (_with(BASE, "title", ""), "title empty"),
    (_with(BASE, "image", ""), "image empty"),
    (_with(BASE, "kind", "fpga"), "unknown kind"),
    (_with(BASE, "qos", "platinum"), "unknown QoS class"),
    (_with(BASE, "qos", "Burstable"), "QoS class in Kubernetes' spelling"),
    (_with(BASE, "resources.memory.limit", "16 gigs"), "memory not a quantity"),
    (_with(BASE, "resources.memory.limit", "16K"), "K is not a Kubernetes suffix"),
    (_with(BASE, "resources.memory.guarantee", "-1Gi"), "negative quantity"),
    (_with(BASE, "resources.cpu.limit", "lots"), "cpu not a quantity"),
    (_with(BASE, "resources.cpu.limit", -2), "negative cpu number"),
    (_with(BASE, "resources.cpu.limit", KeyError), "limit missing"),
    (_with(BASE, "resources.cpu.burst", 8), "unknown key in a range"),
    (_with(BASE, "resources.memory", KeyError), "memory missing"),
    (_with(BASE, "resources.gpus", 2), "cpu entry asking for GPUs"),
    (_with(BASE, "resources.gpus", True), "gpus a boolean"),
    (_with(BASE, "resources.gpus", "1"), "gpus a string"),
    (_with(GPU, "resources.gpus", 0), "gpu entry with no GPU"),
    (_with(GPU, "resources.gpus", KeyError), "gpu entry without gpus"),
    (_with(GPU, "resources.gpus", -1), "negative gpus"),
    (_with(BASE, "groups", []), "no groups"),
    (_with(BASE, "groups", "tomo"), "groups a string"),
    (_with(BASE, "groups", [""]), "an empty group name"),
    (_with(BASE, "groups", KeyError), "groups missing"),
    (_with(BASE, "imagee", "typo"), "unknown key"),
    (_with(BASE, "mounts.0.mount_path", "data/raw"), "relative mount path"),
    (_with(BASE, "mounts.0.name", KeyError), "mount without a name"),
    (_with(BASE, "mounts.0.read_only", "yes"), "read_only a string"),
    (_with(BASE, "mounts.0.size", "1Ti"), "unknown mount key"),
    (_with(BASE, "local.env", {"BAD-NAME": "1"}), "bad environment variable name"),
    (_with(BASE, "local.env", {"X": [1]}), "environment value a list"),
    (_with(BASE, "local.env", {"X": True}), "environment value a boolean"),
    (_with(BASE, "local.args", [""]), "an empty argument"),
    (_with(BASE, "local.cmd", "bash"), "unknown key under local"),
    (_with(BASE, "node_selector", {"zone": 3}), "node selector value a number"),
    (_with(BASE, "default", "yes"), "default a string"),
]

# What only the hub checks (JSON Schema cannot compare two values): refused by the hub, let
# through by the chart.
HUB_ONLY = [
    (_with(BASE, "resources.cpu.guarantee", 64), "guarantee above the limit"),
    (_with(GPU, "resources.memory.guarantee", "1Gi"), "guaranteed QoS with guarantee != limit"),
    (_with(BASE, "qos", "besteffort"), "besteffort QoS with guarantees"),
    (_with(BASE, "resources.cpu.limit", 0), "a zero limit"),
    (_with(BASE, "mounts", [BASE["mounts"][0], BASE["mounts"][0]]), "two mounts of one name"),
]


def hub_accepts(entry: dict) -> bool:
    try:
        parse_catalog({"environments": [entry]}, "example.yaml")
    except CatalogError:
        return False
    return True


def chart_accepts(entry: dict) -> bool:
    try:
        validate_schema({"catalog": {"environments": [entry]}})
    except helm.HelmValuesError:
        return False
    return True


def test_the_charts_schema_carries_the_catalogs_schema_verbatim():
    current = (CHART / "values.schema.json").read_text()
    assert generate_schema.generated(current) == current, "run deploy/helm/generate_schema.py"
    items = json.loads(current)["properties"]["catalog"]["properties"]["environments"]["items"]
    assert items == ENVIRONMENT_SCHEMA


@pytest.mark.parametrize("entry", [e for e, _ in EXAMPLES], ids=[w for _, w in EXAMPLES])
def test_hub_and_chart_give_the_same_verdict(entry):
    assert hub_accepts(entry) == chart_accepts(entry)


def test_the_examples_cover_both_verdicts():
    verdicts = [hub_accepts(e) for e, _ in EXAMPLES]
    assert sum(verdicts) >= 5 and verdicts.count(False) >= 30


@pytest.mark.parametrize("entry", [e for e, _ in HUB_ONLY], ids=[w for _, w in HUB_ONLY])
def test_rules_between_two_values_are_the_hubs(entry):
    assert chart_accepts(entry) and not hub_accepts(entry)


def test_the_shipped_catalog_passes_both():
    environments = yaml.safe_load(DEFAULT_CATALOG.read_text())["environments"]
    assert all(hub_accepts(e) for e in environments)
    validate_schema({"catalog": {"environments": environments}})


@pytest.mark.parametrize("text", ["500m", "4Gi", "1.5", "2e3", ".5", "+3", "128974848"])
def test_the_schemas_quantity_pattern_is_the_parsers_grammar(text):
    pattern = ENVIRONMENT_SCHEMA["properties"]["resources"]["properties"]["cpu"]["properties"]["limit"]["pattern"]
    assert re.search(pattern, text) and parse_quantity(text) >= 0
