"""The allow-list: registered GraphQL documents, one per `.graphql` file under `operations.folder`.

Roles with `operations: registered` may run only these documents. A document is recognised by the
SHA-256 of its text as written in the file (what a client bundling the file sends, in full or as an
APQ hash), or by the SHA-256 of its normalised form (graphql-core's `print_ast` of the parsed
document), so the same document sent with other whitespace or without its comments is accepted too.
Files are read, parsed and checked against the schema at start; a broken file stops the gateway.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, print_ast, validate

from server.settings import OperationsSettings, RoleSettings

log = logging.getLogger("customer_graph.operations")

DENIED = "only registered operations are allowed for this role: send one of the gateway's registered documents"
CHECKED_MAX = 1024  # remembered verdicts per query text; unique texts only evict, never grow memory


class OperationsError(ValueError):
    """A registered document that cannot be loaded (reported at start with its file)."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def normalised(document: DocumentNode) -> str:
    return print_ast(document)


@dataclass
class Operation:
    path: Path
    text: str  # as written in the file
    document: DocumentNode
    names: list[str]  # its operations' names (anonymous ones as "")


@dataclass
class Registry:
    operations: list[Operation] = field(default_factory=list)
    by_hash: dict[str, str] = field(default_factory=dict)  # sha256 of file text -> that text (for APQ)
    normal: set[str] = field(default_factory=set)  # sha256 of each document's print_ast form
    # No registered document has more tokens than characters in its normal form: a query with more
    # cannot match, so its parse stops there (a restricted role's 1 MB query costs no full parse).
    max_tokens: int = 0
    _checked: OrderedDict[str, bool] = field(default_factory=OrderedDict, repr=False)

    @classmethod
    def load(cls, folder: str | Path) -> Registry:
        """Every `*.graphql` file under `folder` (sorted, recursively); an empty folder name: no documents."""
        registry = cls()
        if not str(folder):
            return registry
        root = Path(folder)
        if not root.is_dir():
            raise OperationsError(f"operations.folder: {root} is not a folder")
        for path in sorted(root.rglob("*.graphql")):
            text = path.read_text(encoding="utf-8")
            try:
                document = parse(text)
            except GraphQLError as exc:
                raise OperationsError(f"{path}: {exc.message}") from None
            names = [d.name.value if getattr(d, "name", None) else "" for d in document.definitions
                     if d.kind == "operation_definition"]
            if not names:
                raise OperationsError(f"{path}: holds no operation")
            registry.operations.append(Operation(path, text, document, names))
            registry.by_hash[_sha256(text)] = text
            normal = normalised(document)
            registry.normal.add(_sha256(normal))
            registry.max_tokens = max(registry.max_tokens, len(normal))
        return registry

    def validate(self, schema: GraphQLSchema) -> None:
        """Every registered document against the schema; the first that does not validate is an error."""
        for op in self.operations:
            errors = validate(schema, op.document)
            if errors:
                raise OperationsError(f"{op.path}: {errors[0].message}")

    def allows(self, query: str) -> bool:
        """Whether this query text is one of the registered documents (verdicts cached per text)."""
        verdict = self._checked.get(query)
        if verdict is not None:
            self._checked.move_to_end(query)
            return verdict
        verdict = _sha256(query) in self.by_hash
        if not verdict:
            try:
                verdict = _sha256(normalised(parse(query, max_tokens=max(1, self.max_tokens)))) in self.normal
            except GraphQLError:
                verdict = False
        self._checked[query] = verdict
        if len(self._checked) > CHECKED_MAX:
            self._checked.popitem(last=False)
        return verdict

    def __len__(self) -> int:
        return len(self.operations)


def check_allowed(role_settings: RoleSettings, registry: Registry | None, query: str) -> str | None:
    """None when the role may run this query; otherwise the message for its FORBIDDEN error."""
    if role_settings.operations != "registered":
        return None
    if registry is not None and registry.allows(query):
        return None
    return DENIED


def allow_list(settings: OperationsSettings, roles: Mapping[str, RoleSettings],
               schema: GraphQLSchema | None = None) -> Registry:
    """The registry for a gateway, at start. A file that does not parse or validate is always an error; a
    missing folder only when some role has `operations: registered` (otherwise a warning: nothing needs it)."""
    needed = sorted(name for name, r in roles.items() if r.operations == "registered")
    if settings.folder and not Path(settings.folder).is_dir() and not needed:
        log.warning("operations.folder %s is not a folder; no role has `operations: registered`, so no "
                    "registered documents are loaded", settings.folder)
        return Registry()
    if needed and not settings.folder:
        raise OperationsError(f"roles {', '.join(needed)} have `operations: registered` but operations.folder is "
                              "not set")
    registry = Registry.load(settings.folder)
    if schema is not None:
        registry.validate(schema)
    if needed and not registry:
        log.warning("operations.folder %s holds no .graphql documents: roles %s may run nothing",
                    settings.folder, ", ".join(needed))
    return registry
