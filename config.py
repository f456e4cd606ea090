"""gateway.yaml: the gateway's settings and its sources, with ${VAR} / ${VAR:-default} from the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from cache.settings import CacheSettings
from connectors.base import SourceConfig
from resolvers.rules import Insights, parse_insights
from server.settings import ApqSettings, AuthSettings, CorsSettings, LimitSettings, OperationsSettings, RoleSettings

# The innermost ${...} first, so a default may itself hold a ${VAR}.
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:(?!\$\{)[^}])*))?\}")
KINDS = ("sql", "rest", "graphql", "xml")


class ConfigError(ValueError):
    pass


@dataclass
class GatewayConfig:
    identity: str = "crosswalk"  # the source that links golden ids to every system's records
    crm: str = "crm"  # the source of names, emails, phones and preferences
    max_ids: int = 100
    request_timeout_s: float = 5.0  # every source call of one request ends by then
    naive: bool = False  # benchmark baseline only: no DataLoaders (one source call per key), no cache
    phone_country: str = "31"  # for phone numbers typed without a country code
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    cache: CacheSettings = field(default_factory=CacheSettings)
    insights: Insights = field(default_factory=Insights)
    auth: AuthSettings | None = None  # None: no `auth` section, and `serve` refuses to start
    roles: dict[str, RoleSettings] = field(default_factory=dict)
    limits: LimitSettings = field(default_factory=LimitSettings)
    apq: ApqSettings = field(default_factory=ApqSettings)
    operations: OperationsSettings = field(default_factory=OperationsSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)


SECTIONS: dict[str, type[BaseModel]] = {"auth": AuthSettings, "limits": LimitSettings, "apq": ApqSettings,
                                        "operations": OperationsSettings, "cors": CorsSettings}


def expand(value: Any) -> Any:
    """Environment variables in every string of the config; a missing one without default is an error."""
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ConfigError(f"environment variable {name} is not set (and has no default)")
        return default

    while True:
        expanded = _VAR.sub(sub, value)
        if expanded == value:
            return expanded
        value = expanded


def _typed(cls: type, section: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Values of a config section checked against the dataclass: unknown keys refused, and numbers or
    booleans that arrived as strings (from ${VAR}) converted."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"{section}: unknown keys {sorted(unknown)}")
    out = dict(raw)
    for name, value in raw.items():
        default = known[name].default
        if isinstance(value, str) and isinstance(default, (bool, int, float)):
            try:
                out[name] = value.strip().lower() in ("1", "true", "yes", "on") if isinstance(default, bool) \
                    else type(default)(value)
            except ValueError:
                raise ConfigError(f"{section}.{name}: {value!r} is not a {type(default).__name__}") from None
    return out


def source_config(name: str, raw: dict[str, Any]) -> SourceConfig:
    if raw.get("kind") not in KINDS:
        raise ConfigError(f"source {name}: kind must be one of {', '.join(KINDS)}")
    if "name" in raw:
        raise ConfigError(f"source {name}: 'name' is the key under sources")
    raw = _typed(SourceConfig, f"sources.{name}", raw)
    if raw["kind"] == "sql" and not raw.get("dsn") or raw["kind"] != "sql" and not raw.get("url"):
        raise ConfigError(f"source {name}: {'dsn' if raw['kind'] == 'sql' else 'url'} is required")
    return SourceConfig(name=name, **{"mapping": name, "system": name, **raw})


def _model(cls: type[BaseModel], section: str, raw: Any) -> Any:
    """A pydantic-checked section; the first problem in one line, naming its key path."""
    try:
        return cls.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join([section, *(str(p) for p in err["loc"])])
        raise ConfigError(f"{where}: {err['msg']}") from None


def _serving(raw: dict[str, Any]) -> dict[str, Any]:
    """The auth, roles, limits, apq, operations and cors sections."""
    out = {name: _model(cls, name, raw.get(name)) for name, cls in SECTIONS.items() if name in raw}
    roles = raw.get("roles") or {}
    if not isinstance(roles, dict):
        raise ConfigError("roles: expected a mapping of role name to its policy")
    out["roles"] = {str(n): _model(RoleSettings, f"roles.{n}", r) for n, r in roles.items()}
    auth = out.get("auth")
    if auth is not None and auth.anonymous_role and auth.anonymous_role not in out["roles"]:
        raise ConfigError(f"auth.anonymous_role: role {auth.anonymous_role!r} is not under roles")
    return out


def parse(raw: dict[str, Any]) -> GatewayConfig:
    raw = expand(raw or {})
    gateway = _typed(GatewayConfig, "gateway", {k: v for k, v in (raw.get("gateway") or {}).items()})
    if {"sources", "cache", "insights", "roles", *SECTIONS} & set(gateway):
        raise ConfigError("gateway: 'sources', 'cache', 'insights', 'roles' and "
                          f"{', '.join(repr(s) for s in SECTIONS)} are sections of their own")
    sources = {n: source_config(n, s or {}) for n, s in (raw.get("sources") or {}).items()}
    cache = _typed(CacheSettings, "cache", raw.get("cache") or {})
    try:
        insights = parse_insights(raw.get("insights") or {})
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    cfg = GatewayConfig(sources=sources, cache=CacheSettings(**cache), insights=insights, **_serving(raw), **gateway)
    if cfg.naive:
        cfg.cache.enabled = False
    for role in (cfg.identity, cfg.crm):
        if role not in sources:
            raise ConfigError(f"gateway refers to source {role!r}, which is not configured")
    return cfg


def load(path: str | Path) -> GatewayConfig:
    cfg = parse(yaml.safe_load(Path(path).read_text()))
    folder = cfg.operations.folder
    if folder and not Path(folder).is_absolute():  # relative to the config file, not to the working directory
        cfg.operations.folder = str(Path(path).resolve().parent / folder)
    return cfg
