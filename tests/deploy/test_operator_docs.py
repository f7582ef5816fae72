"""The operator's pages (deploy/README.md, deploy/docs/) say what is true of our chart.

Docs drift: a value renamed, an object name changed, a link to a page that moved.  These checks
tie the pages to the chart as rendered (Helm's engine, no cluster) and to the files they name:
every link opens a file (and its #anchor a heading), every chart value key the pages name exists,
every object name the verify checklist tells operators to look for is rendered, the image table
agrees with images/README.md, and the pre-pull example lists every catalog image.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from deploy_render import merge_values, render_objects

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PAGES = [DEPLOY / "README.md", *sorted((DEPLOY / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
OUR_KEYS = ("sessions", "scheduler", "priorityClasses", "networkPolicy", "jobs", "catalog", "fullnameOverride")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", page.read_text(), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_link_opens_a_file_and_its_anchor_a_heading(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link {target} opens nothing"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.name}: {target}: no heading #{anchor} in {dest.name}"


def has_path(tree, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def test_every_chart_value_the_pages_name_exists():
    """A dotted key in backticks is a key of values.yaml (or of the hub's settings.json, which
    deploy/README.md's table describes)."""
    values = yaml.safe_load((DEPLOY / "helm" / "beamhub" / "values.yaml").read_text())  # nulls too
    settings = json.loads(
        next(o for o in render_objects() if o["metadata"]["name"] == "beamhub-hub-settings")["data"]["settings.json"]
    )
    named = set()
    for page in PAGES:
        for key in re.findall(r"`((?:%s)(?:\.[A-Za-z0-9_]+)*)`" % "|".join(OUR_KEYS), page.read_text()):
            named.add(key)
    assert "sessions.storage.home.init.enabled" in named
    for key in sorted(named):
        assert has_path(values, key) or has_path(settings, key), f"the pages name `{key}`, which values.yaml lacks"


def test_objects_the_checklist_names_are_rendered():
    objects = render_objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for kind, name in [
        ("Deployment", "beamhub-scheduler"),
        ("PriorityClass", "beamhub-guaranteed"),
        ("PriorityClass", "beamhub-burstable"),
        ("PriorityClass", "beamhub-besteffort"),
        ("ConfigMap", "beamhub-catalog"),
        ("ConfigMap", "beamhub-hub-settings"),
        ("NetworkPolicy", "beamhub-scheduler"),
        ("Service", "beamhub-scheduler"),
        ("ServiceAccount", "beamhub-scheduler"),
    ]:
        assert (kind, name) in names, (kind, name)
    verify = (DEPLOY / "docs" / "verify.md").read_text()
    port = merge_values(None)["scheduler"]["extender"]["port"]
    assert f"beamhub-scheduler.beamhub.svc:{port}/summary" in verify
    priorities = merge_values(None)["priorityClasses"]["values"]
    assert f"Priorities {priorities['guaranteed']}, {priorities['burstable']}, {priorities['besteffort']}" in verify


def test_image_table_agrees_with_images_readme_and_the_catalog():
    readme = (REPO / "images" / "README.md").read_text()
    measured = dict(re.findall(r"^\| `(\w+)` \| ([\d.]+ GB) \|", readme, re.M))
    page = (DEPLOY / "docs" / "images.md").read_text()
    listed = dict(re.findall(r"^\| `(\w+)` \|[^|]*\|[^|]*\| ([\d.]+ GB) \|", page, re.M))
    assert listed == measured and set(listed) == {"hub", "base", "gpu", "tomo", "spi"}
    # the pre-pull example names every catalog image the single-user default does not cover
    catalog = yaml.safe_load((REPO / "hub" / "catalog.yaml").read_text())
    single = merge_values(None)["jupyterhub"]["singleuser"]["image"]["name"].rsplit("/", 1)[-1]
    needed = {e["image"].rsplit("/", 1)[-1].split(":")[0] for e in catalog["environments"]} - {single}
    prepulled = set(re.findall(r"beamhub-(\w+):\s+\{name: \S+/beamhub/(\w+),", page))
    assert {image for _, image in prepulled} == needed
