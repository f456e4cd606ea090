"""Connectors: one module per kind of source, each fetching many keys per call."""

from __future__ import annotations

import aiohttp

from connectors.base import Connector, SourceConfig
from connectors.graphql import GraphQLConnector
from connectors.rest import RestConnector
from connectors.sql import SqlConnector
from connectors.xml import XmlConnector


def build(configs: dict[str, SourceConfig], session: aiohttp.ClientSession) -> dict[str, Connector]:
    """A connector for every configured source; HTTP kinds share the one session."""
    http = {"rest": RestConnector, "graphql": GraphQLConnector, "xml": XmlConnector}
    return {name: SqlConnector(c) if c.kind == "sql" else http[c.kind](c, session) for name, c in configs.items()}
