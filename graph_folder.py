"""Which folder of declaration files the process builds its types from, decided before they are built.

The types (schema/graph.py) are built once per process, at import, from CUSTOMER_GRAPH_TYPES or the
repository's `sources/`. A configuration whose `gateway.sources` names another folder (your own systems'
declarations) must build them from that folder: `use_config_folder` sets CUSTOMER_GRAPH_TYPES from the
config file before anything imports the schema (worker processes inherit it). Deliberately tiny: it may
not import the schema, the config models or anything that does.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def config_folder(config_path: str | Path) -> Path | None:
    """The sources folder a config file names (relative to the file), or None (none named, unreadable)."""
    path = Path(config_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None  # config.load reports it, with the file and line
    folder = (raw or {}).get("gateway", {}).get("sources") if isinstance(raw, dict) else None
    if not isinstance(folder, str) or not folder or "${" in folder:
        return None
    found = Path(folder) if Path(folder).is_absolute() else path.resolve().parent / folder
    return found if found.is_dir() else None


def use_config_folder(argv: list[str]) -> None:
    """CUSTOMER_GRAPH_TYPES from `--config FILE` in argv (or gateway.yaml beside this file), unless set."""
    if os.environ.get("CUSTOMER_GRAPH_TYPES"):
        return
    config_path = Path(__file__).resolve().parent / "gateway.yaml"
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            config_path = Path(argv[i + 1])
        elif arg.startswith("--config="):
            config_path = Path(arg.split("=", 1)[1])
    folder = config_folder(config_path)
    if folder is not None:
        os.environ["CUSTOMER_GRAPH_TYPES"] = str(folder)


def build_or_exit() -> None:
    """Build the process's types now; a broken declaration ends the process with its one-line error
    (file, key path, what was expected) instead of an import traceback."""
    from schema.declared import DeclarationError
    try:
        import schema.insights  # noqa: F401  (compiles the insights' roles and blockers)
        import schema.mutation  # noqa: F401  (the mutations)
        import schema.types  # noqa: F401  (builds the graph and attaches the declared fields)
    except DeclarationError as exc:
        raise SystemExit(f"config error: {exc}") from None
