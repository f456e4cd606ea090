"""The configuration: gateway.yaml and one declaration file per source system, checked at start.

gateway.yaml holds the gateway's own settings and names a folder of sources (`gateway: {sources:
sources}`, relative to the file's directory); each `sources/<name>.yaml` declares one system, its name
being the file's stem. Sources may also be written inline under `sources:` (the tests build configs
that way); a name defined in both places is an error. A source's `types:` and `enums:` (and those of a
shared file, named `_...`, which is not a source) are the GraphQL types its entities become: built once
per process by schema/graph.py, checked here to be the ones it built; so are its `insights:` and `timeline:` sections
(schema/roles.py), whose settings type gateway.yaml's `insights.cross_sell`. `${VAR}` and
`${VAR:-default}` in any string are read from the environment.

Every section is a pydantic v2 model (the sources' in connectors/, the cache's in cache/, the serving
sections' in server/settings.py, the rules' in resolvers/rules.py): unknown keys and out-of-range
values are refused, numbers and booleans that arrive as strings (from ${VAR}) are converted, and the
first problem becomes one ConfigError line naming the file, the key path and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cache.settings import CacheSettings
from connectors.base import KINDS, SourceConfig
from resolvers.rules import Insights, parse_insights
from schema import graph
from schema.declared import DeclarationError, TypeRef
from schema.roles import insights_of
from server.settings import (
    ApqSettings,
    AuthSettings,
    CorsSettings,
    EventSettings,
    FederationSettings,
    GraphiqlSettings,
    LimitSettings,
    MetricsSettings,
    OperationsSettings,
    RoleSettings,
    SubscriptionSettings,
)

__all__ = ["KINDS", "ConfigError", "GatewayConfig", "display_path", "inline", "load", "parse"]

# The innermost ${...} first, so a default may itself hold a ${VAR}.
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:(?!\$\{)[^}])*))?\}")
SOURCE_SUFFIXES = (".yaml", ".yml")


class ConfigError(ValueError):
    """One line: where (file, key path) and what was expected."""


class GatewaySection(BaseModel):
    """The `gateway:` section."""

    model_config = ConfigDict(extra="forbid")

    # The source that links golden ids to every system's records; by default the one declaring `identity:`.
    identity: str = ""
    max_ids: int = Field(100, ge=1, le=10_000)
    request_timeout_s: float = Field(5.0, gt=0)  # every source call of one request ends by then
    ready_probe_s: float = Field(2.0, gt=0, le=300)  # how often /readyz's probe asks the identity source
    naive: bool = False  # benchmark baseline only: no DataLoaders (one source call per key), no cache
    sources: str = ""  # a folder of declaration files, one per system, relative to the config file
    # How queries execute: the compiled plan (server/plan.py), or graphql-core's executor to fall back to.
    execution: Literal["plan", "graphql-core"] = "plan"


class GatewayConfig(BaseModel):
    """The whole configuration, as the rest of the gateway reads it."""

    model_config = ConfigDict(extra="forbid")

    identity: str = ""
    max_ids: int = 100
    request_timeout_s: float = 5.0
    ready_probe_s: float = 2.0
    naive: bool = False
    execution: Literal["plan", "graphql-core"] = "plan"
    sources: dict[str, SourceConfig] = {}
    cache: CacheSettings = CacheSettings()
    insights: Insights = Field(default_factory=graph.RULES)  # typed with the declared settings
    auth: AuthSettings | None = None  # None: no `auth` section, and `serve` refuses to start
    roles: dict[str, RoleSettings] = {}
    limits: LimitSettings = LimitSettings()
    apq: ApqSettings = ApqSettings()
    operations: OperationsSettings = OperationsSettings()
    cors: CorsSettings = CorsSettings()
    graphiql: GraphiqlSettings = GraphiqlSettings()
    federation: FederationSettings = FederationSettings()
    metrics: MetricsSettings = MetricsSettings()
    events: EventSettings = EventSettings()
    subscriptions: SubscriptionSettings = SubscriptionSettings()
    files: dict[str, str] = {}  # source name -> the declaration file it came from ("" when inline)


SECTIONS: dict[str, type[BaseModel]] = {"auth": AuthSettings, "limits": LimitSettings, "apq": ApqSettings,
                                        "operations": OperationsSettings, "cors": CorsSettings,
                                        "graphiql": GraphiqlSettings, "federation": FederationSettings,
                                        "metrics": MetricsSettings, "events": EventSettings,
                                        "subscriptions": SubscriptionSettings}
TOP_LEVEL = ("gateway", "sources", "cache", "insights", "roles", *SECTIONS)


def _where(origin: str, path: Sequence[Any]) -> str:
    """`file: key.path: ` (either part left out when empty)."""
    parts = [p for p in (origin, ".".join(str(p) for p in path)) if p]
    return "".join(f"{p}: " for p in parts)


def expand(value: Any, origin: str = "", path: tuple[Any, ...] = ()) -> Any:
    """Environment variables in every string of the config; a missing one without default is an error."""
    if isinstance(value, dict):
        return {k: expand(v, origin, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, origin, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ConfigError(f"{_where(origin, path)}environment variable {name} is not set (and has no default)")
        return default

    while True:
        expanded = _VAR.sub(sub, value)
        if expanded == value:
            return expanded
        value = expanded


def _model(cls: type[BaseModel], origin: str, section: Sequence[Any], raw: Any, **extra: Any) -> Any:
    """A pydantic-checked section; its first problem in one line, naming the file and the key path."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(origin, section)}expected a mapping of keys to values, got {_kind(raw)}")
    try:
        return cls.model_validate({**raw, **extra})
    except ValidationError as exc:
        raise ConfigError(describe(exc, origin, section)) from None


def describe(exc: ValidationError, origin: str = "", section: Sequence[Any] = ()) -> str:
    """The first error of a ValidationError as `file: key.path: what was expected`."""
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (misspelt, or not a setting of this section)"
    elif err["type"] == "literal_error" or err["type"] == "enum":
        msg += f", got {err['input']!r}"
    return f"{_where(origin, [*section, *err['loc']])}{msg}"


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def check_types(raw: Any, origin: str = "", section: Sequence[Any] = ()) -> None:
    """A declaration file's `types:` and `enums:` must be those the process's graph was built from."""
    if not isinstance(raw, dict) or not any(k in raw for k in graph.SECTIONS):
        return
    built = graph.GRAPH.declarations
    types = raw.get("types")
    if isinstance(types, dict):  # a copy written with sorted keys: the fields in the built order
        raw = {**raw, "types": {n: _in_order(t, built.types[n]) if n in built.types else t for n, t in types.items()}}
    try:  # its errors start with the label: `file: ` or `file: sources.NAME.` then the key path
        mine = graph.declarations_of(raw, _where(origin, section).removesuffix(": ") or "configuration")
    except DeclarationError as exc:
        raise ConfigError(str(exc)) from None
    for kind, decls, have in (("enums", mine.enums, built.enums), ("types", mine.types, built.types)):
        for name, decl in decls.items():
            if have.get(name) != decl:
                raise ConfigError(f"{_where(origin, [*section, kind, name])}not as the gateway's types were built "
                                  f"{_built()}")
    _check_timeline(raw, origin, section)


def _built() -> str:
    return (f"(from {display_path(graph.folder())}, once per process; CUSTOMER_GRAPH_TYPES "
            f"names another folder)")


def _check_timeline(raw: dict[str, Any], origin: str, section: Sequence[Any]) -> None:
    """A file's `timeline:` section: well formed, and (for a file of the sources folder) the one built."""
    try:
        mine = graph.timeline_of(raw, _where(origin, section).removesuffix(": ") or "configuration")
    except DeclarationError as exc:
        raise ConfigError(str(exc)) from None
    if origin and not section and tuple(mine) != graph.TIMELINE.declared.get(Path(origin).name, ()):
        raise ConfigError(f"{_where(origin, ['timeline'])}not as the gateway's timeline was built {_built()}")


def check_insights(name: str, raw: Any, origin: str = "", section: Sequence[Any] = ()) -> None:
    """A declaration file's `insights:` (schema/roles.py) must be the one the process's graph was built from."""
    if not isinstance(raw, dict) or raw.get("insights") is None:
        return
    try:
        mine = insights_of(raw, _where(origin, section).removesuffix(": ") or "configuration")
    except DeclarationError as exc:
        raise ConfigError(str(exc)) from None
    built = next((d for f, d in graph.INSIGHTS.files.items() if Path(f).stem == name), None)
    if mine != built:
        raise ConfigError(f"{_where(origin, [*section, 'insights'])}not as the gateway's insights were built "
                          f"(from {display_path(graph.folder())}, once per process; CUSTOMER_GRAPH_TYPES "
                          f"names another folder)")


def _in_order(raw: Any, built: Any) -> Any:
    fields = raw.get("fields") if isinstance(raw, dict) else None
    if not isinstance(fields, dict):
        return raw
    order = {name: i for i, name in enumerate(built.fields)}
    return {**raw, "fields": dict(sorted(fields.items(), key=lambda kv: order.get(kv[0], len(order))))}


def source_config(name: str, raw: Any, origin: str = "", section: Sequence[Any] = ()) -> SourceConfig:
    """One source's declaration; `system` defaults to its name. Its `types:` and `enums:` are checked
    against the process's graph (schema/graph.py), not kept here."""
    if isinstance(raw, dict) and "name" in raw:
        where = _where(origin, [*section, "name"])
        raise ConfigError(f"{where}not a setting: a source's name is "
                          f"{'the file name' if not section else 'its key under sources'}")
    if isinstance(raw, dict) and any(k in raw for k in graph.SECTIONS):
        check_types(raw, origin, section)
        check_insights(name, raw, origin, section)
        raw = {k: v for k, v in raw.items() if k not in graph.SECTIONS}
    base = {"system": name, **raw} if isinstance(raw, dict) else raw
    return _model(SourceConfig, origin, section, base, name=name)  # type: ignore[no-any-return]


def _read_yaml(path: Path, shown: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{shown}: {line}not valid YAML ({problem})") from None


def display_path(path: Path) -> str:
    """A path as the error messages show it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _declared(folder: Path, origin: str) -> dict[str, tuple[Any, str]]:
    """Each `<name>.yaml` of the sources folder, expanded: name -> (settings, the file as shown)."""
    if not folder.is_dir():
        raise ConfigError(f"{_where(origin, ['gateway', 'sources'])}{display_path(folder)} is not a folder")
    out: dict[str, tuple[Any, str]] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix in SOURCE_SUFFIXES and p.is_file()):
        shown = display_path(path)
        if path.stem in out:
            raise ConfigError(f"{shown}: source {path.stem!r} is declared twice in {display_path(folder)}")
        raw = _read_yaml(path, shown)
        if raw is None:
            raw = {}
        if graph.shared(path):  # shared types and enums, not a source
            check_types(raw, shown)
            check_insights(path.stem, raw, shown)
            continue
        if not isinstance(raw, dict):
            raise ConfigError(f"{shown}: expected the source's settings (kind, url or dsn, ...), got {_kind(raw)}")
        out[path.stem] = (expand(raw, shown), shown)
    return out


def _sources(raw: dict[str, Any], folder: str, base: Path | None, origin: str) -> tuple[dict[str, SourceConfig],
                                                                                        dict[str, str]]:
    inline = raw.get("sources") or {}
    if not isinstance(inline, dict):
        raise ConfigError(f"{_where(origin, ['sources'])}expected a mapping of source name to its settings")
    sources = {str(n): source_config(str(n), s, origin, ["sources", n]) for n, s in inline.items()}
    files = dict.fromkeys(sources, "")
    if folder:
        path = Path(folder)
        if not path.is_absolute():  # relative to the config file, not to the working directory
            path = (base or Path.cwd()) / path
        for name, (settings, shown) in _declared(path, origin).items():
            if name in sources:
                raise ConfigError(f"{shown}: source {name!r} is also defined under `sources:` in "
                                  f"{origin or 'the configuration'}; declare it in one place")
            sources[name] = source_config(name, settings, shown)
            files[name] = shown
    return sources, files


def _serving(raw: dict[str, Any], origin: str) -> dict[str, Any]:
    """The auth, roles, limits, apq, operations, cors, graphiql and metrics sections."""
    out = {name: _model(cls, origin, [name], raw.get(name)) for name, cls in SECTIONS.items() if name in raw}
    roles = raw.get("roles") or {}
    if not isinstance(roles, dict):
        raise ConfigError(f"{_where(origin, ['roles'])}expected a mapping of role name to its policy")
    out["roles"] = {str(n): _model(RoleSettings, origin, ["roles", n], r) for n, r in roles.items()}
    auth = out.get("auth")
    if auth is not None and auth.anonymous_role and auth.anonymous_role not in out["roles"]:
        raise ConfigError(f"{_where(origin, ['auth', 'anonymous_role'])}role {auth.anonymous_role!r} is not under roles")
    return out


def _insights(raw: Any, origin: str) -> Insights:
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{_where(origin, ['insights'])}expected a mapping, got {_kind(raw)}")
    try:
        return parse_insights(raw or {}, graph.RULES)
    except ValidationError as exc:
        raise ConfigError(describe(exc, origin, ["insights"])) from None


def parse(raw: dict[str, Any] | None, base: str | Path | None = None, origin: str = "") -> GatewayConfig:
    """A configuration from its parsed YAML. `base` is the folder a relative `gateway.sources` is read
    from (the working directory when None); `origin` names the file in error messages."""
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin or 'configuration'}: expected a mapping of sections, got {_kind(raw)}")
    unknown = [k for k in raw if k not in TOP_LEVEL]
    if unknown:
        raise ConfigError(f"{_where(origin, [unknown[0]])}unknown section (expected one of {', '.join(TOP_LEVEL)})")
    # The sources' own files are expanded as they are read; inline ones here, with everything else.
    raw = expand(raw, origin)
    section = raw.get("gateway")
    gateway = _model(GatewaySection, origin, ["gateway"], section).model_dump()
    folder = gateway.pop("sources")
    sources, files = _sources(raw, folder, Path(base) if base is not None else None, origin)
    cache = _model(CacheSettings, origin, ["cache"], raw.get("cache"))
    cfg = GatewayConfig(sources=sources, files=files, cache=cache, insights=_insights(raw.get("insights"), origin),
                        **_serving(raw, origin), **gateway)
    if cfg.naive:
        cfg.cache.enabled = False
    if not cfg.identity:
        cfg.identity = _identity_source(cfg, origin)
    if cfg.identity not in sources:
        raise ConfigError(f"{_where(origin, ['gateway', 'identity'])}source {cfg.identity!r} is not declared "
                          f"(sources: {', '.join(sorted(sources)) or 'none'})")
    _identity(cfg, origin)
    check_links(cfg, origin)
    return cfg


def _records_of(cfg: GatewayConfig) -> dict[str, tuple[str, str | None]]:
    """entity -> (a source providing it, its record type)."""
    out: dict[str, tuple[str, str | None]] = {}
    for name, src in cfg.sources.items():
        for entity, e in src.entities.items():
            out.setdefault(entity, (name, e.record))
    return out


def check_links(cfg: GatewayConfig, origin: str = "") -> None:
    """What links sources must hold together: an entity keyed by another's field names an entity some
    source provides and a field of its records; a `graph:` field's entity is provided, with the records
    the field declares, and a field on another type is keyed by that type's records."""
    provided = _records_of(cfg)
    for name, src in cfg.sources.items():
        where = cfg.files.get(name) or origin
        section = [] if cfg.files.get(name) else ["sources", name]
        for entity, e in src.entities.items():
            if e.keys is None:
                continue
            at = _where(where, [*section, "entities", entity, "keys", "from"])
            if e.keys.entity not in provided:
                raise ConfigError(f"{at}no source provides an entity {e.keys.entity!r} "
                                  f"(entities: {', '.join(sorted(provided))})")
            record = provided[e.keys.entity][1]
            fields = graph.GRAPH.declarations.types[record].fields if record in graph.GRAPH.declarations.types else {}
            if e.keys.field not in fields:
                raise ConfigError(f"{at}{record or 'a plain value'} (entity {e.keys.entity}) has no field "
                                  f"{e.keys.field!r}" + (f" (fields: {', '.join(fields)})" if fields else ""))
    for key, (file, d) in graph.ATTACHED.items():
        at = _where(file, ["graph", key, "entity"])
        if d.entity not in provided:
            raise ConfigError(f"{at}no source provides entity {d.entity!r}")
        source, record = provided[d.entity]
        expected = d.record or TypeRef.parse(d.type).named
        if record != expected:
            raise ConfigError(f"{at}{source}'s {d.entity} are {record or 'plain values'} records, not {expected}")
        owner = key.split(".")[0]
        if owner != "Customer":
            spec = cfg.sources[source].entities[d.entity].keys
            if spec is None or provided.get(spec.entity, ("", None))[1] != owner:
                raise ConfigError(f"{at}a field on {owner} needs an entity keyed by a field of {owner} records "
                                  f"(keys: {{from: <entity of {owner}>.<field>}} in {source}'s {d.entity})")
def _identity_source(cfg: GatewayConfig, origin: str) -> str:
    """The one source declaring `identity:`, when gateway.identity names none."""
    declaring = sorted(n for n, s in cfg.sources.items() if s.identity is not None)
    if len(declaring) != 1:
        found = f"sources {' and '.join(declaring)} do" if declaring else "no source does"
        raise ConfigError(f"{_where(origin, ['gateway', 'identity'])}expected the source that declares identity: "
                          f"(golden ids and findCustomers' lookups); {found}")
    return declaring[0]


def _identity(cfg: GatewayConfig, origin: str) -> None:
    """The identity source declares `identity:`, as findCustomers was built from (schema/graph.py);
    no other source does."""
    def where(name: str) -> str:
        file = cfg.files.get(name)
        return _where(file, ["identity"]) if file else _where(origin, ["sources", name, "identity"])

    decl = cfg.sources[cfg.identity].identity
    if decl is None:
        raise ConfigError(f"{_where(origin, ['gateway', 'identity'])}source {cfg.identity!r} declares no identity: "
                          f"section (the entities that link golden ids, and findCustomers' lookups)")
    for name, source in cfg.sources.items():
        if name != cfg.identity and source.identity is not None:
            raise ConfigError(f"{where(name)}only the identity source (gateway.identity: {cfg.identity}) "
                              f"declares identity")
        contacts = source.events.contacts if source.events is not None else None
        for i, lookup in enumerate(contacts.lookups if contacts is not None else ()):
            if lookup not in decl.lookups:  # the screen pop identifies callers with these (resolvers/live.py)
                file = cfg.files.get(name)
                at = _where(file, ["events", "contacts", "lookups", i]) if file else \
                    _where(origin, ["sources", name, "events", "contacts", "lookups", i])
                raise ConfigError(f"{at}{lookup!r} is not a lookup of the identity source "
                                  f"(lookups: {', '.join(decl.lookups)})")
    if graph.IDENTITY is not None and graph.IDENTITY[1] != decl:
        raise ConfigError(f"{where(cfg.identity)}not as the gateway's findCustomers was built (from "
                          f"{display_path(graph.folder() / graph.IDENTITY[0])}, once per process; "
                          f"CUSTOMER_GRAPH_TYPES names another folder)")


def inline(path: str | Path) -> dict[str, Any]:
    """A config file as one self-contained dict, its sources folder's declarations written under
    `sources:` (not yet expanded, not yet checked): for writing a variant of it elsewhere (the tests).
    Their `types:` and `enums:` are left out: the process builds its types from its own folder."""
    path = Path(path)
    raw = _read_yaml(path, display_path(path)) or {}
    gateway = dict(raw.get("gateway") or {})
    folder = gateway.pop("sources", "")
    if folder:
        base = Path(folder) if Path(folder).is_absolute() else path.resolve().parent / folder
        sources = dict(raw.get("sources") or {})
        for name, file in sorted((p.stem, p) for p in base.iterdir()
                                 if p.suffix in SOURCE_SUFFIXES and not graph.shared(p)):
            if name in sources:
                raise ConfigError(f"{display_path(file)}: source {name!r} is also defined under `sources:` in "
                                  f"{display_path(path)}")
            settings = _read_yaml(file, display_path(file)) or {}
            if isinstance(settings, dict):  # the types are the process's (schema/graph.py), not the copy's
                settings = {k: v for k, v in settings.items() if k not in graph.SECTIONS}
            sources[name] = settings
        raw = {**raw, "gateway": gateway, "sources": sources}
    example = (raw.get("graphiql") or {}).get("example")
    if isinstance(example, str) and example and not Path(example).is_absolute():  # the copy may live elsewhere
        raw = {**raw, "graphiql": {**raw["graphiql"], "example": str(path.resolve().parent / example)}}
    return raw


def load(path: str | Path) -> GatewayConfig:
    """The configuration in a file, its sources folder and operations folder relative to the file."""
    path = Path(path)
    shown = display_path(path)
    cfg = parse(_read_yaml(path, shown), path.resolve().parent, shown)
    folder = cfg.operations.folder
    if folder and not Path(folder).is_absolute():  # relative to the config file, not to the working directory
        cfg.operations.folder = str(path.resolve().parent / folder)
    example = cfg.graphiql.example
    if example:
        found = Path(example) if Path(example).is_absolute() else path.resolve().parent / example
        cfg.graphiql.example = str(found)
    return cfg
