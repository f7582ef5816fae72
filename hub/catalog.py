"""The environment menu: one YAML file, validated once at hub start.

Every environment a user can click is an entry under ``environments:``.  A bad
entry stops the hub with one message naming the file, the entry and the field
(``CatalogError``), never a traceback from deep inside a spawn.  The same
catalog drives the local spawner, the Kubernetes spawner and the launch page.

Example entry (every key is documented in the shipped ``catalog.yaml``)::

    - slug: tomo
      title: Tomography
      description: Reconstruct CT scans with beamhub.kernels.tomo.
      image: ghcr.io/beamhub/tomo:0.1.0
      kind: cpu                      # cpu | gpu
      resources:
        cpu: {guarantee: 2, limit: 4}          # cores; "500m" also accepted
        memory: {guarantee: 4Gi, limit: 16Gi}  # Kubernetes quantities: Mi, Gi, G, ...
        gpus: 0
      qos: burstable                 # guaranteed | burstable | besteffort
      groups: [tomo]                 # "*" = every signed-in user
      mounts:
        - {name: raw, mount_path: /data/raw, read_only: true, groups: [tomo]}
      local:
        env: {BEAMHUB_BACKEND: numpy}
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from beamhub.qos import CATALOG_NAMES
from beamhub.quantity import NON_NEGATIVE_QUANTITY_PATTERN, parse_quantity

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")

#: The QoS classes as the catalog spells them (Kubernetes' names in lower case, :mod:`beamhub.qos`).
QOS_CLASSES = CATALOG_NAMES
GUARANTEED, BURSTABLE, BEST_EFFORT = QOS_CLASSES
#: What each QoS class means to a scientist; pages show these words, the class name on hover.
QOS_WORDS = {GUARANTEED: "guaranteed resources", BURSTABLE: "may burst", BEST_EFFORT: "no guarantee"}
KINDS = ("cpu", "gpu")
EVERYONE = "*"
_SLUG = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _quantity() -> dict:
    return {"type": ["string", "number"], "pattern": NON_NEGATIVE_QUANTITY_PATTERN, "minimum": 0}


def _resource_range() -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {"guarantee": _quantity(), "limit": _quantity()},
        "required": ["limit"],
    }


def _strings(**extra) -> dict:
    return {"type": "array", "items": {"type": "string", "minLength": 1}, **extra}


#: One catalog entry, as JSON Schema (draft-07): the one definition of the format.  The hub's
#: validator below reads its keys, types, required fields, enums, patterns and bounds from it,
#: and the chart's values.schema.json carries it verbatim under catalog.environments.items
#: (written by deploy/helm/beamhub/generate_schema.py; a test keeps the two equal).  What JSON
#: Schema cannot say (a guarantee above its limit, a guaranteed entry with guarantee != limit, a
#: besteffort entry with guarantees, a zero limit, duplicate slugs or mount names, two defaults)
#: only the hub checks, when it starts.
ENVIRONMENT_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "slug": {"type": "string", "pattern": _SLUG},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "image": {"type": "string", "minLength": 1},
        "kind": {"type": "string", "enum": list(KINDS)},
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "cpu": _resource_range(),
                "memory": _resource_range(),
                "gpus": {"type": "integer", "minimum": 0},
            },
            "required": ["cpu", "memory"],
        },
        "qos": {"type": "string", "enum": list(QOS_CLASSES)},
        "groups": _strings(minItems=1),
        "mounts": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "mount_path": {"type": "string", "pattern": "^/"},
                    "read_only": {"type": "boolean"},
                    "groups": _strings(),
                    "local_path": {"type": "string"},
                },
                "required": ["name", "mount_path"],
            },
        },
        "local": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "env": {
                    "type": "object",
                    "propertyNames": {"pattern": _ENV_NAME},
                    "additionalProperties": {"type": ["string", "number"]},
                },
                "args": _strings(),
            },
        },
        "node_selector": {"type": "object", "additionalProperties": {"type": "string"}},
        "default": {"type": "boolean"},
    },
    "required": ["slug", "title", "image", "kind", "resources", "qos", "groups"],
    # kind and resources.gpus agree: a gpu entry asks for at least one GPU, a cpu entry for none
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": "gpu"}}},
            "then": {"properties": {"resources": {"required": ["gpus"], "properties": {"gpus": {"minimum": 1}}}}},
        },
        {
            "if": {"properties": {"kind": {"const": "cpu"}}},
            "then": {"properties": {"resources": {"properties": {"gpus": {"maximum": 0}}}}},
        },
    ],
    "description": "One catalog entry (format of hub/catalog.yaml; the hub checks it fully at start).",
}

#: What a refusal by a pattern or a bound says, by field, where the bare rule would not help.
_HINTS = {
    "slug": "must be lower-case letters, digits and dashes (at most 40)",
    "mount_path": "must be an absolute path",
    "groups": f"must list at least one group (or {EVERYONE!r} for everyone)",
    "env": "is not a valid environment variable name",
}
#: Python types of JSON Schema's types (a bool is never a number here, as in JSON).
_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}


class CatalogError(ValueError):
    """The catalog file is unreadable or an entry is invalid; the message names entry and field."""


@dataclass(frozen=True)
class Range:
    """A resource guarantee (request) and limit, in cores (CPU) or bytes (memory)."""

    guarantee: float
    limit: float


@dataclass(frozen=True)
class Mount:
    """A data volume an environment gets, visible only to users in ``groups``."""

    name: str
    mount_path: str
    read_only: bool = True
    groups: tuple[str, ...] = (EVERYONE,)
    local_path: str | None = None  # where the local spawner finds it (absent: skipped)

    def allowed_for(self, groups: Iterable[str]) -> bool:
        return EVERYONE in self.groups or bool(set(self.groups) & set(groups))


@dataclass(frozen=True)
class Environment:
    """One entry of the menu: what to run, with which resources, for whom."""

    slug: str
    title: str
    description: str
    image: str
    kind: str
    cpu: Range
    memory: Range
    gpus: int
    qos: str
    groups: tuple[str, ...]
    mounts: tuple[Mount, ...] = ()
    local_env: dict[str, str] = field(default_factory=dict)
    local_args: tuple[str, ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    default: bool = False

    def allowed_for(self, groups: Iterable[str]) -> bool:
        """True when a user in ``groups`` may start this environment."""
        return EVERYONE in self.groups or bool(set(self.groups) & set(groups))

    @property
    def qos_words(self) -> str:
        """The QoS class in plain words ('may burst'), for cards and the home page."""
        return QOS_WORDS[self.qos]

    @property
    def qos_detail(self) -> str:
        """The technical side, shown on hover: 'QoS class burstable: guaranteed 2 CPU · 4 GiB, up to 4 CPU · 16 GiB'."""
        floor = f"{_fmt_cores(self.cpu.guarantee)} CPU · {_fmt_bytes(self.memory.guarantee)}"
        ceiling = f"{_fmt_cores(self.cpu.limit)} CPU · {_fmt_bytes(self.memory.limit)}"
        if self.qos == GUARANTEED:
            return f"QoS class guaranteed: {ceiling} reserved for you"
        if self.qos == BURSTABLE:
            return f"QoS class burstable: guaranteed {floor}, up to {ceiling} when the node has room"
        return f"QoS class besteffort: nothing reserved, up to {ceiling}"

    def summary(self) -> str:
        """A short resource line for cards and progress messages, e.g. '4 CPU · 16 GiB · 1 GPU'."""
        parts = [f"{_fmt_cores(self.cpu.limit)} CPU", f"{_fmt_bytes(self.memory.limit)}"]
        if self.gpus:
            parts.append(f"{self.gpus} GPU")
        return " · ".join(parts)


@dataclass(frozen=True)
class Catalog:
    """The validated menu, in file order."""

    environments: tuple[Environment, ...]
    source: str = "<memory>"

    def __iter__(self):
        return iter(self.environments)

    def __len__(self) -> int:
        return len(self.environments)

    def get(self, slug: str) -> Environment | None:
        return next((e for e in self.environments if e.slug == slug), None)

    def for_groups(self, groups: Iterable[str], *, everything: bool = False) -> list[Environment]:
        """The environments a user in ``groups`` may start (all of them when ``everything``)."""
        groups = set(groups)
        return [e for e in self.environments if everything or e.allowed_for(groups)]

    def default_slug(self) -> str:
        marked = [e.slug for e in self.environments if e.default]
        return marked[0] if marked else self.environments[0].slug


def _fmt_cores(cores: float) -> str:
    return f"{cores:g}"


def _fmt_bytes(n: float) -> str:
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= factor:
            return f"{n / factor:g} {unit}"
    return f"{n:g} B"


def parse_memory(value: Any) -> float:
    """Bytes from a Kubernetes quantity: 512Mi, 8Gi, 2G or a plain number of bytes."""
    return _non_negative(value, f"{value!r} is not a memory size like 8Gi or 512Mi")


def parse_cpu(value: Any) -> float:
    """Cores from a Kubernetes quantity: a number (2, 0.5) or millicores ("500m")."""
    return _non_negative(value, f"{value!r} is not a CPU amount like 2, 0.5 or 500m")


def _non_negative(value: Any, refusal: str) -> float:
    """``value`` read by :func:`beamhub.quantity.parse_quantity`; ``refusal`` when it is none or negative."""
    try:
        number = parse_quantity(value)
    except ValueError:
        raise ValueError(refusal) from None
    if number < 0:
        raise ValueError(f"{value!r} is negative")
    return number


class _Entry:
    """Reads one mapping against its part of :data:`ENVIRONMENT_SCHEMA`.

    Every problem becomes a CatalogError naming the entry and the field.
    """

    def __init__(self, where: str, data: Any, schema: dict, path: str = ""):
        self.where, self.path, self.schema = where, path, schema
        if not isinstance(data, dict):
            self.fail(f"must be a mapping, not {type(data).__name__}")
        self.data = data

    def fail(self, message: str, key: str | None = None):
        name = ".".join(p for p in (self.path, key) if p)
        prefix = f"{self.where}: field '{name}'" if name else self.where
        raise CatalogError(f"{prefix}: {message}")

    def _rule(self, key: str) -> dict:
        return self.schema["properties"][key]

    def get(self, key: str, default=None):
        """The value of ``key`` after the schema's checks (type, enum, pattern, bounds); ``default`` when absent."""
        rule = self._rule(key)
        if key not in self.data or self.data[key] is None:
            if key in self.schema.get("required", ()):
                self.fail("is required", key)
            return default
        value = self.data[key]
        types = rule["type"] if isinstance(rule["type"], list) else [rule["type"]]
        if rule["type"] == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON Schema's integer: 2.0 is one
        if isinstance(value, bool) != ("boolean" in types) or not isinstance(
            value, tuple(t for name in types for t in _flat(_TYPES[name]))
        ):
            names = "/".join(_TYPES[t].__name__ if isinstance(_TYPES[t], type) else "number" for t in types)
            self.fail(f"must be {names}, not {type(value).__name__} ({value!r})", key)
        self.check(key, value, rule)
        return value

    def check(self, key: str, value: Any, rule: dict) -> None:
        """The schema's value rules of ``rule`` (enum, pattern, minLength, minimum, minItems) on ``value``."""
        hint = _HINTS.get(key)
        if "enum" in rule and value not in rule["enum"]:
            self.fail(f"{value!r} is not one of {', '.join(rule['enum'])}", key)
        if isinstance(value, str):
            if "pattern" in rule and not re.search(rule["pattern"], value):
                self.fail(f"{value!r} {hint or 'does not match ' + rule['pattern']}", key)
            if len(value) < rule.get("minLength", 0):
                self.fail("must not be empty", key)
        elif isinstance(value, (int, float)):
            if value < rule.get("minimum", value):
                self.fail(f"must be {rule['minimum']} or more", key)
        elif isinstance(value, list) and len(value) < rule.get("minItems", 0):
            self.fail(hint or f"needs at least {rule['minItems']} item(s)", key)

    def sub(self, key: str) -> _Entry:
        """The mapping under ``key`` (empty when absent and not required), read against its schema."""
        return _Entry(
            self.where, self.get(key, default={}), self._rule(key), ".".join(p for p in (self.path, key) if p)
        )

    def convert(self, key: str, parse, default=None):
        """``parse`` of the value under ``key`` (its ValueError names the field); ``default`` when absent."""
        if key not in self.data or self.data[key] is None:
            if key in self.schema.get("required", ()):
                self.fail("is required", key)
            return default
        try:
            return parse(self.data[key])
        except ValueError as exc:
            self.fail(str(exc), key)

    def strings(self, key: str, default=()) -> tuple[str, ...]:
        """A list of non-empty strings under ``key``."""
        value = self.get(key, default=list(default))
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.fail(f"item {i} must be a non-empty string, not {item!r}", key)
        return tuple(value)

    def items(self, key: str) -> list:
        """The list under ``key`` (empty when absent)."""
        return self.get(key, default=[])

    def mapping(self, key: str) -> dict:
        """A free-form mapping under ``key``: its names and values checked against the schema's
        ``propertyNames`` pattern and ``additionalProperties`` type."""
        value = self.get(key, default={})
        rule = self._rule(key)
        names, values = rule.get("propertyNames", {}), rule.get("additionalProperties", {})
        allowed = tuple(t for name in _as_list(values.get("type", [])) for t in _flat(_TYPES[name]))
        for name, item in value.items():
            if not isinstance(name, str) or "pattern" in names and not re.search(names["pattern"], name):
                self.fail(f"{name!r} {_HINTS.get(key, 'does not match ' + str(names.get('pattern')))}", key)
            if allowed and (isinstance(item, bool) or not isinstance(item, allowed)):
                kinds = " or ".join("number" if t == "number" else t for t in _as_list(values["type"]))
                self.fail(f"value of {name} must be a {kinds}, not {item!r}", key)
        return value

    def done(self):
        unknown = sorted(set(self.data) - set(self.schema["properties"]))
        if unknown:
            self.fail(f"unknown key(s) {', '.join(map(repr, unknown))} (check the spelling)")


def _flat(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _range(entry: _Entry, key: str, parse) -> Range:
    sub = entry.sub(key)
    guarantee = sub.convert("guarantee", parse, default=0.0)
    limit = sub.convert("limit", parse)
    sub.done()
    if guarantee > limit:
        sub.fail(f"guarantee ({sub.data.get('guarantee')}) is larger than the limit ({sub.data['limit']})")
    if limit <= 0:
        sub.fail("must be positive", "limit")
    return Range(guarantee, limit)


def _mount(where: str, data: Any, index: int) -> Mount:
    entry = _Entry(where, data, ENVIRONMENT_SCHEMA["properties"]["mounts"]["items"], f"mounts[{index}]")
    mount = Mount(
        name=entry.get("name"),
        mount_path=entry.get("mount_path"),
        read_only=entry.get("read_only", default=True),
        groups=entry.strings("groups", default=(EVERYONE,)),
        local_path=entry.get("local_path"),
    )
    entry.done()
    return mount


def _environment(data: Any, index: int, source: str) -> Environment:
    slug = data.get("slug") if isinstance(data, dict) else None
    where = (
        f"catalog {source}: environment {slug!r} (entry {index + 1})"
        if slug
        else f"catalog {source}: entry {index + 1}"
    )
    entry = _Entry(where, data, ENVIRONMENT_SCHEMA)
    slug = entry.get("slug")
    kind = entry.get("kind")
    qos = entry.get("qos")
    resources = entry.sub("resources")
    cpu = _range(resources, "cpu", parse_cpu)
    memory = _range(resources, "memory", parse_memory)
    gpus = resources.get("gpus", default=0)
    resources.done()
    if kind == "gpu" and gpus < 1:
        entry.fail("a gpu environment needs resources.gpus of at least 1", "resources.gpus")
    if kind == "cpu" and gpus:
        entry.fail("a cpu environment cannot request GPUs (set kind: gpu)", "resources.gpus")
    if qos == GUARANTEED and (cpu.guarantee != cpu.limit or memory.guarantee != memory.limit):
        entry.fail("guaranteed QoS needs guarantee == limit for cpu and memory", "qos")
    if qos == BEST_EFFORT and (cpu.guarantee or memory.guarantee):
        entry.fail("besteffort QoS cannot have cpu or memory guarantees", "qos")
    groups = entry.strings("groups", default=())
    mounts = tuple(_mount(where, m, i) for i, m in enumerate(entry.items("mounts")))
    names = [m.name for m in mounts]
    if len(set(names)) != len(names):
        entry.fail(f"mount names must be unique, got {names}", "mounts")
    local = entry.sub("local")
    local_env = local.mapping("env")
    local_args = local.strings("args")
    local.done()
    node_selector = entry.mapping("node_selector")
    environment = Environment(
        slug=slug,
        title=entry.get("title"),
        description=entry.get("description", default=""),
        image=entry.get("image"),
        kind=kind,
        cpu=cpu,
        memory=memory,
        gpus=gpus,
        qos=qos,
        groups=groups,
        mounts=mounts,
        local_env={k: str(v) for k, v in local_env.items()},
        local_args=local_args,
        node_selector=dict(node_selector),
        default=entry.get("default", default=False),
    )
    entry.done()
    return environment


def parse_catalog(data: Any, source: str = "<memory>") -> Catalog:
    """Validate an already-parsed YAML document into a :class:`Catalog`."""
    if not isinstance(data, dict) or "environments" not in data:
        raise CatalogError(f"catalog {source}: needs a top-level 'environments:' list")
    unknown = sorted(set(data) - {"environments"})
    if unknown:
        raise CatalogError(f"catalog {source}: unknown top-level key(s) {', '.join(map(repr, unknown))}")
    items = data["environments"]
    if not isinstance(items, list) or not items:
        raise CatalogError(f"catalog {source}: 'environments' must be a non-empty list")
    environments = tuple(_environment(item, i, source) for i, item in enumerate(items))
    seen: set[str] = set()
    for i, env in enumerate(environments):
        if env.slug in seen:
            raise CatalogError(
                f"catalog {source}: environment {env.slug!r} (entry {i + 1}): field 'slug': duplicate slug"
            )
        seen.add(env.slug)
    if sum(e.default for e in environments) > 1:
        raise CatalogError(f"catalog {source}: more than one environment has default: true")
    return Catalog(environments, source)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate the catalog at ``path`` (default: the one shipped with BeamHub)."""
    path = Path(path) if path else DEFAULT_CATALOG
    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogError(f"catalog {path}: cannot read it ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog {path}: not valid YAML: {exc}") from None
    return parse_catalog(data, str(path))
