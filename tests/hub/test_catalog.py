"""The environment catalog: the shipped menu is valid, and every kind of bad entry is named."""

import copy

import pytest
import yaml

from beamhub.hub.catalog import (
    DEFAULT_CATALOG,
    CatalogError,
    load_catalog,
    parse_catalog,
    parse_cpu,
    parse_memory,
)


@pytest.fixture
def menu():
    return yaml.safe_load(DEFAULT_CATALOG.read_text())


def test_shipped_catalog_has_the_required_environments():
    catalog = load_catalog()
    titles = {e.slug: e for e in catalog}
    assert {"scipy", "tomo", "spi-emc", "phasing-gpu", "dl-gpu"} <= set(titles)
    assert titles["phasing-gpu"].kind == "gpu" and titles["phasing-gpu"].gpus == 1
    assert titles["spi-emc"].qos == "guaranteed"
    assert titles["scipy"].memory.limit == 4 * 2**30
    assert catalog.default_slug() == "scipy"
    for env in catalog:
        assert env.description and env.image and env.groups


def test_groups_decide_the_menu():
    catalog = load_catalog()
    assert [e.slug for e in catalog.for_groups({"tomo"})] == ["scipy", "tomo", "dl-gpu"]
    assert [e.slug for e in catalog.for_groups(set())] == ["scipy"]
    assert len(catalog.for_groups(set(), everything=True)) == len(catalog)


@pytest.mark.parametrize("value, cores", [(2, 2.0), ("500m", 0.5), ("1.5", 1.5), (0.25, 0.25)])
def test_parse_cpu(value, cores):
    assert parse_cpu(value) == cores


@pytest.mark.parametrize("value, nbytes", [("512Mi", 512 * 2**20), ("8Gi", 8 * 2**30), ("2G", 2e9), (1024, 1024)])
def test_parse_memory(value, nbytes):
    assert parse_memory(value) == nbytes


def _break(menu, index, path, value):
    data = copy.deepcopy(menu)
    node = data["environments"][index]
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


BAD = [
    # (entry, field path, bad value, words the message must contain)
    (0, "slug", "Not A Slug", ["entry 1", "'slug'", "lower-case"]),
    (1, "title", KeyError, ["'tomo'", "'title'", "required"]),
    (1, "kind", "fpga", ["'tomo'", "'kind'", "cpu, gpu"]),
    (1, "qos", "platinum", ["'tomo'", "'qos'", "guaranteed"]),
    (1, "resources.memory.limit", "16 gigs", ["'tomo'", "resources.memory.limit", "memory size"]),
    (1, "resources.cpu.limit", "lots", ["'tomo'", "resources.cpu.limit", "CPU amount"]),
    (1, "resources.cpu.guarantee", 64, ["'tomo'", "resources.cpu", "larger than the limit"]),
    (1, "resources.gpus", 2, ["'tomo'", "resources.gpus", "cpu environment"]),
    (3, "resources.gpus", 0, ["'phasing-gpu'", "resources.gpus", "at least 1"]),
    (2, "resources.memory.guarantee", "1Gi", ["'spi-emc'", "'qos'", "guarantee == limit"]),
    (1, "groups", [], ["'tomo'", "'groups'", "at least one group"]),
    (1, "groups", "tomo", ["'tomo'", "'groups'", "must be list"]),
    (1, "imagee", "typo", ["'tomo'", "imagee", "unknown key"]),
    (1, "mounts", [{"name": "raw", "mount_path": "data/raw"}], ["'tomo'", "mounts[0].mount_path", "absolute"]),
    (1, "mounts", [{"mount_path": "/data"}], ["'tomo'", "mounts[0].name", "required"]),
    (1, "local", {"env": {"BAD-NAME": "1"}}, ["'tomo'", "local.env", "environment variable"]),
    (1, "local", {"env": {"X": [1]}}, ["'tomo'", "local.env", "string or number"]),
    (1, "resources.gpus", True, ["'tomo'", "resources.gpus", "must be int"]),
    (1, "slug", "scipy", ["'scipy'", "duplicate"]),
]


@pytest.mark.parametrize("index, path, value, words", BAD, ids=[f"{b[1]}={b[2]!r}" for b in BAD])
def test_bad_entries_are_named(menu, index, path, value, words):
    data = _break(menu, index, path, value)
    with pytest.raises(CatalogError) as err:
        parse_catalog(data, "menu.yaml")
    message = str(err.value)
    assert "menu.yaml" in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    "text, words",
    [
        ("environments: [", ["not valid YAML"]),
        ("envs: []", ["top-level 'environments:'"]),
        ("environments: []", ["non-empty list"]),
        ("environments: [42]", ["entry 1", "mapping"]),
    ],
)
def test_bad_files(tmp_path, text, words):
    path = tmp_path / "menu.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    for word in words:
        assert word in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "absent.yaml")
