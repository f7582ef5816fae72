"""Labels built from usernames are valid Kubernetes label values; the real name is an annotation."""

import re

import pytest

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.jobs.manifests import job_objects
from beamhub.hub.jobs.model import parse_request
from beamhub.hub.pods import ClusterSettings, label_value, owner_metadata

# The API server's rule for a label value (apimachinery's IsValidLabelValue).
VALID = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CATALOG = load_catalog()
SETTINGS = ClusterSettings()


@pytest.mark.parametrize(
    "name", ["a@b.org", "Zoë Smith", "-lead-", "x" * 80, "@@@", "user/../admin", "a_b.c-d", "alice"]
)
def test_label_value_is_valid_and_injective(name):
    value = label_value(name)
    assert VALID.match(value) and len(value) <= 63, value


def test_valid_names_are_unchanged_and_altered_ones_do_not_collide():
    assert label_value("alice") == "alice" and label_value("a-b.org") == "a-b.org"
    assert label_value("a@b.org").startswith("a-b.org-")
    assert label_value("a@b.org") != label_value("a-b.org") != label_value("a#b.org")
    assert len({label_value("x" * 80), label_value("x" * 81)}) == 2


def test_owner_metadata_keeps_the_real_name_in_an_annotation():
    labels, annotations = owner_metadata("a@b.org")
    assert VALID.match(labels["beamhub.io/owner"]) and annotations == {"beamhub.io/owner": "a@b.org"}


@pytest.mark.parametrize("ranks, mpi_operator", [(1, False), (3, False), (3, True)])
def test_every_job_object_of_an_email_user_has_valid_labels(ranks, mpi_operator):
    identity = Identity("a@b.org", 2001, 2001, (3001,), ("spi",))
    job = parse_request(
        {"kind": "emc", "args": ["c.ini"], "cwd": "/home/jovyan", "ranks": ranks, "environment": "spi-emc"}, "a@b.org"
    )
    objects = job_objects(job, CATALOG.get("spi-emc"), identity, SETTINGS, "beamhub", mpi_operator=mpi_operator)

    def metadata(node):
        if isinstance(node, dict):
            if isinstance(node.get("labels"), dict):
                yield node
            for value in node.values():
                yield from metadata(value)
        elif isinstance(node, list):
            for value in node:
                yield from metadata(value)

    found = list(metadata(objects))
    assert found
    for meta in found:
        for key, value in meta["labels"].items():
            assert VALID.match(value) and len(value) <= 63, (key, value)
    assert all(
        meta.get("annotations", {}).get("beamhub.io/owner") == "a@b.org"
        for meta in found
        if "beamhub.io/owner" in meta["labels"]
    )
