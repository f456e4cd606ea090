"""The process's graph: every declared type and enum, built once, at import, from the declaration files.

Each `sources/<name>.yaml` may declare `types:` and `enums:` beside its `entities:` (the types its entities
become); a file whose name starts with `_` (e.g. `sources/_shared.yaml`) is not a source and declares only
types and enums several systems share (Channel). All of them together are one set of declarations
(`schema.declared.Declarations.merge`: a name declared twice is an error naming both files), built into one
`schema.declared.Graph`: a slotted record class and a GraphQL type per type, a Python-and-GraphQL enum per
enum. The records are registered for pickling (schema/registered.py), which is why there is one graph per
process, built before any module that names a record is imported, and every schema built from it (one per
role, server/policy.py) uses the same classes.

The folder is the repository's `sources/`, or `CUSTOMER_GRAPH_TYPES` when set (a folder of declaration
files). A configuration read later (config.py) checks that the types its source files declare are the ones
built here.

The files' `insights:` sections (schema/roles.py) are read here too: their settings type gateway.yaml's
`insights.cross_sell` (`RULES`, the model config.py checks it with), and schema/insights.py compiles the
roles and blockers.

The files' `timeline:` sections (schema/events.py) are compiled here too, against the records: `TIMELINE`, the
kinds of event each entity's records make, with the enum and union the timeline's GraphQL types use.

`GRAPH` is not finished here: schema/types.py adds the fields the framework computes (resolvers) and
finishes it. Records and enums are ready at once: `record("Payment")`, `enum("Channel")`.
"""

from __future__ import annotations

import enum as _enum
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from connectors.declaration import use_records
from connectors.identity import IdentityDecl
from resolvers.rules import Insights, insights_model
from schema.attached import AttachDecl, parse_target
from schema.declared import DeclarationError, Declarations, EnumDecl, Graph, TypeDecl
from schema.events import EventDecl, Timeline, compile_timeline
from schema.roles import Loaded, load_insights, setting_fields

FOLDER = Path(__file__).resolve().parent.parent / "sources"
SUFFIXES = (".yaml", ".yml")
SECTIONS = ("types", "enums", "graph", "timeline", "insights", "inputs", "mutations")  # the schema's, not the source's


def folder() -> Path:
    """The folder of declaration files the process's graph is built from."""
    env = os.environ.get("CUSTOMER_GRAPH_TYPES")
    return Path(env) if env else FOLDER


def shared(path: Path) -> bool:
    """A file of shared declarations (types and enums only), not a source: its name starts with `_`."""
    return path.name.startswith("_")


_ENUMS = TypeAdapter(dict[str, EnumDecl])
_TYPES = TypeAdapter(dict[str, TypeDecl])


def declarations_of(raw: Any, file: str) -> Declarations:
    """The `types:` and `enums:` of one parsed declaration file (other keys belong to its source), each
    declaration checked; the names they use are checked across all files, by `Declarations.merge`."""
    if not isinstance(raw, dict):
        return Declarations()
    try:
        enums = _ENUMS.validate_python(raw.get("enums") or {})
    except ValidationError as exc:
        raise _error(file, "enums", exc) from None
    try:
        types = _TYPES.validate_python(raw.get("types") or {})
    except ValidationError as exc:
        raise _error(file, "types", exc) from None
    return Declarations.model_construct(enums=enums, types=types)


def _error(file: str, section: str, exc: ValidationError) -> DeclarationError:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in (section, *err["loc"]))
    return DeclarationError(f"{file}: {where}: {str(err['msg']).removeprefix('Value error, ')}")


_ATTACHED = TypeAdapter(dict[str, AttachDecl])


def attached_of(raw: Any, file: str) -> dict[str, AttachDecl]:
    """The `graph:` section of one parsed declaration file: where its types attach (schema/attached.py)."""
    if not isinstance(raw, dict) or not raw.get("graph"):
        return {}
    try:
        found = _ATTACHED.validate_python(raw["graph"])
        for key in found:
            parse_target(key)
    except ValidationError as exc:
        raise _error(file, "graph", exc) from None
    except ValueError as exc:
        raise DeclarationError(f"{file}: graph: {exc}") from None
    return found


def load_attached(where: Path) -> dict[str, tuple[str, AttachDecl]]:
    """Every file's `graph:` entries: "Type.field" -> (the file, the declaration); twice is an error."""
    out: dict[str, tuple[str, AttachDecl]] = {}
    for path in sorted(p for p in where.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        for key, decl in attached_of(yaml.safe_load(path.read_text()), path.name).items():
            if key in out:
                raise DeclarationError(f"{path.name}: graph.{key}: already declared in {out[key][0]}")
            out[key] = (path.name, decl)
    return out


def load_identity(where: Path) -> tuple[str, IdentityDecl] | None:
    """The one file's `identity:` section (findCustomers' lookups, connectors/identity.py): (the file,
    the declaration), or None when no file declares one; two files declaring one is an error."""
    found: tuple[str, IdentityDecl] | None = None
    for path in sorted(p for p in where.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        raw = yaml.safe_load(path.read_text())
        if not isinstance(raw, dict) or "identity" not in raw:
            continue
        if found is not None:
            raise DeclarationError(f"{path.name}: identity: already declared in {found[0]} "
                                   f"(one source links the golden ids)")
        try:
            found = (path.name, IdentityDecl.model_validate(raw["identity"]))
        except ValidationError as exc:
            raise _error(path.name, "identity", exc) from None
    return found


_TIMELINE = TypeAdapter(list[EventDecl])


def timeline_of(raw: Any, file: str) -> list[EventDecl]:
    """The `timeline:` section of one parsed declaration file: the events its entities make (schema/events.py)."""
    if not isinstance(raw, dict) or not raw.get("timeline"):
        return []
    try:
        return _TIMELINE.validate_python(raw["timeline"])
    except ValidationError as exc:
        raise _error(file, "timeline", exc) from None


def load_timeline(where: Path, graph: Graph) -> Timeline:
    """Every file's `timeline:` entries (files by name, entries in order), compiled against the graph; an
    entity's record type is the one its `entities:` declaration names."""
    entries: list[tuple[str, int, EventDecl]] = []
    entity_records: dict[str, str] = {}
    for path in sorted(p for p in where.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        raw = yaml.safe_load(path.read_text())
        entries += [(path.name, i, d) for i, d in enumerate(timeline_of(raw, path.name))]
        entities = raw.get("entities") if isinstance(raw, dict) else None
        for name, e in (entities if isinstance(entities, dict) else {}).items():
            if isinstance(e, dict) and isinstance(e.get("record"), str):
                entity_records.setdefault(str(name), e["record"])
    return compile_timeline(entries, entity_records, graph)


def load_declarations(where: Path) -> Declarations:
    """Every file's types and enums in `where`, as one set."""
    parts: dict[str, Declarations] = {}
    for path in sorted(p for p in where.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        raw = yaml.safe_load(path.read_text())
        if shared(path) and isinstance(raw, dict) and set(raw) - set(SECTIONS):
            extra = min(set(raw) - set(SECTIONS))
            raise DeclarationError(f"{path.name}: {extra}: a shared file (named _...) declares only "
                                   f"types and enums, it is not a source")
        parts[path.name] = declarations_of(raw, path.name)
    try:
        return Declarations.merge(parts)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DeclarationError(f"{where}: {str(err['msg']).removeprefix('Value error, ')}") from None


GRAPH = Graph(load_declarations(folder()))
use_records(GRAPH.records)  # the connectors' entities name these
ATTACHED = load_attached(folder())
IDENTITY = load_identity(folder())
INSIGHTS: Loaded = load_insights(folder())  # the roles, blockers and settings the insights read (schema/roles.py)
RULES: type[Insights] = insights_model(setting_fields(INSIGHTS, GRAPH))  # gateway.yaml's insights:, typed
TIMELINE = load_timeline(folder(), GRAPH)
records: dict[str, type] = GRAPH.records
enums: dict[str, type[_enum.Enum]] = GRAPH.enums


def record(name: str) -> type:
    """A declared type's record class, or KeyError."""
    return records[name]


def enum(name: str) -> Any:
    """A declared enum (Python enum and GraphQL enum in one), or KeyError."""
    return enums[name]


def golden_example() -> str:
    """" (C-000042)": a golden id as the identity declaration shows one, for descriptions; or nothing."""
    example = IDENTITY[1].golden_id.example if IDENTITY is not None else None
    return f" ({example})" if example else ""
