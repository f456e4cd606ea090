"""The ASGI app built from the config file named in CUSTOMER_GRAPH_CONFIG (for uvicorn workers)."""

from __future__ import annotations

import os

from starlette.applications import Starlette

import config
from server.app import create_app
from telemetry.logs import configure as configure_logging


def app() -> Starlette:
    configure_logging(os.environ.get("CUSTOMER_GRAPH_LOG_LEVEL", "info"))  # each worker process logs like the parent
    return create_app(config.load(os.environ["CUSTOMER_GRAPH_CONFIG"]))
