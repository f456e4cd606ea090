"""The ASGI app built from the config file named in CUSTOMER_GRAPH_CONFIG (for uvicorn workers)."""

from __future__ import annotations

import os

from starlette.applications import Starlette

import config
from server.app import create_app


def app() -> Starlette:
    return create_app(config.load(os.environ["CUSTOMER_GRAPH_CONFIG"]))
