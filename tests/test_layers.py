"""The house's one-way flow (../shared/ARCHITECTURE.md): gateway -> server -> schema -> resolvers -> cache
-> connectors. Nothing imports a layer above its own, not even inside a function; telemetry/, which every
layer calls, imports none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.harness import ROOT

# Each layer and the top-level modules it must not import (those above it).
ABOVE = {
    # Cross-cutting: every layer may call it, so it imports none of them.
    "telemetry": {"connectors", "cache", "resolvers", "schema", "server", "config", "gateway", "extensions", "estate"},
    "connectors": {"cache", "resolvers", "schema", "server", "config", "gateway", "extensions", "estate"},
    "cache": {"resolvers", "schema", "server", "config", "gateway", "estate"},
    "resolvers": {"schema", "server", "config", "gateway", "estate"},
    "schema": {"server", "config", "gateway", "estate"},
    "server": {"gateway", "estate"},
}


def _type_only(tree: ast.AST) -> set[ast.AST]:
    """Imports under `if TYPE_CHECKING:`: annotations only, never run."""
    return {n for node in ast.walk(tree) if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING" for n in ast.walk(node)}


def imported(path: Path) -> set[str]:
    found = set()
    tree = ast.parse(path.read_text())
    skip = _type_only(tree)
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_layer_imports_one_above_it(layer: str) -> None:
    wrong = {f"{p.relative_to(ROOT)} imports {m}" for p in (ROOT / layer).rglob("*.py")
             for m in imported(p) & ABOVE[layer]}
    assert not wrong, sorted(wrong)
