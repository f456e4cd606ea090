"""gateway.yaml: the gateway's settings and its sources, with ${VAR} / ${VAR:-default} from the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from connectors.base import SourceConfig

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
    phone_country: str = "31"  # for phone numbers typed without a country code
    sources: dict[str, SourceConfig] = field(default_factory=dict)


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


def source_config(name: str, raw: dict[str, Any]) -> SourceConfig:
    if raw.get("kind") not in KINDS:
        raise ConfigError(f"source {name}: kind must be one of {', '.join(KINDS)}")
    known = {f.name for f in fields(SourceConfig)} - {"name"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"source {name}: unknown keys {sorted(unknown)}")
    if raw["kind"] == "sql" and not raw.get("dsn") or raw["kind"] != "sql" and not raw.get("url"):
        raise ConfigError(f"source {name}: {'dsn' if raw['kind'] == 'sql' else 'url'} is required")
    return SourceConfig(name=name, **{"mapping": name, "system": name, **raw})


def parse(raw: dict[str, Any]) -> GatewayConfig:
    raw = expand(raw or {})
    gateway = dict(raw.get("gateway") or {})
    sources = {n: source_config(n, s or {}) for n, s in (raw.get("sources") or {}).items()}
    cfg = GatewayConfig(sources=sources, **gateway)
    for role in (cfg.identity, cfg.crm):
        if role not in sources:
            raise ConfigError(f"gateway refers to source {role!r}, which is not configured")
    return cfg


def load(path: str | Path) -> GatewayConfig:
    return parse(yaml.safe_load(Path(path).read_text()))
