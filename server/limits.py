"""Operation limits, checked before any source is called (gateway.yaml `limits:`).

- the request body, refused while it is read (`read_body`): 413 PAYLOAD_TOO_LARGE;
- tokens, through graphql-core's `parse(..., max_tokens=N)` (server/query_cache.py): QUERY_TOO_COMPLEX;
- depth, aliases, the customers one request may touch and an estimated cost (`Limits.check`):
  QUERY_TOO_COMPLEX with `extensions.limit` naming the limit and its value;
- every Int argument within [0, max_int_arg] or its own bounds, literals and variables: BAD_USER_INPUT;
- the request's deadline and its client's disconnect cancel its work (`guarded`).

The structural part (depth, aliases, static customers and cost, literal Int arguments) is computed once
per cached document, before validation (graphql-core's overlapping-fields rule alone costs ~100 ms on
200 aliases of a full view; an over-limit document never reaches it, and the walk tolerates what
validation would refuse: unknown fields, fragment cycles, nesting beyond max_depth), keyed by query text as server/query_cache.py keys its documents; a repeated query
pays one dict lookup. Only what depends on variables (a list of ids, a `first`, an Int) is evaluated
per request, from a few terms kept with the shape.

The cost model: each object a field resolves counts 1; a list counts its `first` argument (its schema
default when absent, the parent's `first` for a connection's `edges`/`nodes`) or `list_size_estimate`.
`cost` is the largest estimate for one item of one root field (one customer's view), and `customers`
counts the items across every root field and alias: `customer(id:)` 1, `customers(ids:)` len(ids),
a subgraph's `_entities(representations:)` len(representations), `findCustomers` gateway.max_ids.
Together they bound a request to customers x cost objects.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    value_from_ast_untyped,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

from resolvers.errors import ClientError

T = TypeVar("T")
_COMMENT = re.compile(r"#[^\n\r]*")
_TOKEN = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n\r]|\\.)*"|\.\.\.|[!$&()\[\]{}:=@|]'
                    r"|[_A-Za-z][_0-9A-Za-z]*|-?[0-9][0-9.eE+-]*")
MAXSIZE = 256  # shapes kept, like server/query_cache.py's documents
CONNECTION_LISTS = frozenset(("edges", "nodes"))
# Root fields taking a list of customers, and its argument: one customer an item.
ID_LISTS = {"customers": "ids", "_entities": "representations"}

# An estimate: an int, or a function of the request's variables (only when a variable feeds it).
Expr = int | Callable[[dict[str, Any]], int]


def _add(a: Expr, b: Expr) -> Expr:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    return lambda v: _ev(a, v) + _ev(b, v)


def _mul(a: Expr, b: Expr) -> Expr:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    return lambda v: _ev(a, v) * _ev(b, v)


def _max(a: Expr, b: Expr) -> Expr:
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return lambda v: max(_ev(a, v), _ev(b, v))


def _ev(e: Expr, variables: dict[str, Any]) -> int:
    return e if isinstance(e, int) else e(variables)


class LimitExceeded(ClientError):
    """A request refused by a limit: QUERY_TOO_COMPLEX (or the code given), naming the limit and its value."""

    code = "QUERY_TOO_COMPLEX"

    def __init__(self, message: str, limit: str, value: Any, requested: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.extensions = {"code": code or self.code, "limit": {"name": limit, "value": value}}
        if requested is not None:
            self.extensions["requested"] = requested

    def graphql(self) -> GraphQLError:
        return GraphQLError(str(self), original_error=self)  # no path: a request error, nothing ran


class ArgumentOutOfRange(ClientError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, argument: str, low: int, high: int) -> None:
        super().__init__(message)
        self.extensions = {"code": self.code, "argument": argument, "min": low, "max": high}

    def graphql(self) -> GraphQLError:
        return GraphQLError(str(self), original_error=self)


class PayloadTooLarge(Exception):
    pass


@dataclass(slots=True)
class Shape:
    """What one operation of one document asks for, as far as the limits care."""

    depth: int = 0
    aliases: int = 0
    customers: int = 0  # static part
    id_lists: tuple[tuple[str, Any], ...] = ()  # (variable, default) feeding customers(ids:) or _entities
    cost: Expr = 0
    errors: list[GraphQLError] = field(default_factory=list)  # literal Int arguments out of range
    int_vars: tuple[tuple[str, Any, Any, str, int, int], ...] = ()  # (variable, default, type, coordinate, lo, hi)
    dynamic: bool = False  # anything to evaluate per request


class _Walk:
    """One pass over an operation, fragments memoised (a fragment spread many times is walked once)."""

    def __init__(self, limits: Limits, schema: GraphQLSchema, document: DocumentNode,
                 operation: OperationDefinitionNode) -> None:
        self.limits = limits
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[tuple[str, Any], tuple[int, int, Expr]] = {}
        self.errors: list[GraphQLError] = []
        self.int_vars: list[tuple[str, Any, Any, str, int, int]] = []
        self.defaults: dict[str, Any] = {}
        for d in operation.variable_definitions or ():
            if d.default_value is not None:
                self.defaults[d.variable.name.value] = value_from_ast_untyped(d.default_value)
        self.seen_vars: set[tuple[str, str]] = set()

    # --- Int arguments -------------------------------------------------------------------------------
    def check_value(self, coord: str, type_: Any, node: ValueNode) -> None:
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(node, VariableNode):
            if self.limits.has_int(type_):
                name = node.name.value
                if (name, coord) not in self.seen_vars:
                    self.seen_vars.add((name, coord))
                    lo, hi = self.limits.bounds(coord)
                    self.int_vars.append((name, self.defaults.get(name), type_, coord, lo, hi))
            return
        if isinstance(node, NullValueNode):
            return
        if isinstance(type_, GraphQLList):
            for item in node.values if isinstance(node, ListValueNode) else (node,):
                self.check_value(coord, type_.of_type, item)
        elif type_ is GraphQLInt:
            if isinstance(node, IntValueNode):
                n = int(node.value)
                lo, hi = self.limits.bounds(coord)
                if not lo <= n <= hi:
                    self.errors.append(out_of_range(coord, n, lo, hi).graphql())
        elif isinstance(type_, GraphQLInputObjectType) and isinstance(node, ObjectValueNode):
            for f in node.fields:
                fdef = type_.fields.get(f.name.value)
                if fdef is not None:
                    self.check_value(f"{type_.name}.{f.name.value}", fdef.type, f.value)

    # --- selections ----------------------------------------------------------------------------------
    def first(self, fdef: Any, args: dict[str, ValueNode]) -> Expr | None:
        """The size a `first` argument asks for: literal, variable or the schema's default."""
        if "first" not in fdef.args:
            return None
        default = fdef.args["first"].default_value
        fallback = default if isinstance(default, int) else self.limits.list_size_estimate
        node = args.get("first")
        if node is None:
            return fallback
        if isinstance(node, IntValueNode):
            return max(0, int(node.value))
        if isinstance(node, VariableNode):
            name, var_default = node.name.value, self.defaults.get(node.name.value)

            def size(v: dict[str, Any]) -> int:
                n = v.get(name, var_default) if v else var_default
                return max(0, n) if isinstance(n, int) and not isinstance(n, bool) else fallback
            return size
        return fallback

    def selections(self, parent: Any, selection_set: SelectionSetNode, conn: Expr | None,
                   level: int = 1) -> tuple[int, int, Expr]:
        if level > self.limits.max_depth:  # deeper than allowed: refused anyway, and recursion stays bounded
            return 1, 0, 0
        depth, aliases, cost = 0, 0, 0
        spread: set[str] = set()
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                d, a, c = self.field(parent, sel, conn, level)
            elif isinstance(sel, InlineFragmentNode):
                t = self.schema.type_map.get(sel.type_condition.name.value) if sel.type_condition else parent
                d, a, c = self.selections(t or parent, sel.selection_set, conn, level)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in spread or name not in self.fragments:
                    continue  # graphql-core collects a fragment once per selection set
                spread.add(name)
                key = (name, conn)
                found = self.memo.get(key)
                if found is None:
                    self.memo[key] = (0, 0, 0)  # a cycle (validation refuses them; we run first) ends here
                    frag = self.fragments[name]
                    t = self.schema.type_map.get(frag.type_condition.name.value) or parent
                    found = self.memo[key] = self.selections(t, frag.selection_set, conn, level)
                d, a, c = found
            else:  # pragma: no cover
                continue
            depth = max(depth, d)
            aliases += a
            cost = _add(cost, c)
        return depth, aliases, cost

    def field(self, parent: Any, node: FieldNode, conn: Expr | None, level: int = 1) -> tuple[int, int, Expr]:
        d, a, size, item = self.sized_field(parent, node, conn, level)
        return d, a, _mul(size, item)

    def sized_field(self, parent: Any, node: FieldNode, conn: Expr | None,
                    level: int = 1) -> tuple[int, int, Expr, Expr]:
        """(depth, aliases, list size, cost of one item); a leaf costs nothing."""
        name = node.name.value
        aliases = 1 if node.alias is not None else 0
        if name == "__typename":
            return 1, aliases, 1, 0
        fdef = parent.fields.get(name) if hasattr(parent, "fields") else None
        if fdef is None:
            fdef = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}.get(name)
            if fdef is None:
                return 1, aliases, 1, 0  # validation would have refused it
        args = {a.name.value: a.value for a in node.arguments or ()}
        for arg_name, value in args.items():
            adef = fdef.args.get(arg_name)
            if adef is not None:
                self.check_value(f"{parent.name}.{name}.{arg_name}", adef.type, value)
        if node.selection_set is None:
            return 1, aliases, 1, 0
        rtype = fdef.type.of_type if isinstance(fdef.type, GraphQLNonNull) else fdef.type
        first = self.first(fdef, args)
        if isinstance(rtype, GraphQLList):
            size: Expr = first if first is not None else (
                conn if conn is not None and name in CONNECTION_LISTS else self.limits.list_size_estimate)
            child_conn = None
        else:
            size, child_conn = 1, first
        deeper = name != "ofType"
        d, a, c = self.selections(get_named_type(rtype), node.selection_set, child_conn, level + deeper)
        # introspection's type references nest `ofType` seven deep in the standard query, one object
        # each (no fan-out): they do not count as depth.
        return d + deeper, aliases + a, size, _add(1, c)

    def root_fields(self, parent: Any, selection_set: SelectionSetNode, out: list[FieldNode]) -> None:
        spread: set[str] = set()
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                out.append(sel)
            elif isinstance(sel, InlineFragmentNode):
                self.root_fields(parent, sel.selection_set, out)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in self.fragments:
                if sel.name.value not in spread:
                    spread.add(sel.name.value)
                    self.root_fields(parent, self.fragments[sel.name.value].selection_set, out)


def refused_by(errors: list[GraphQLError]) -> str | None:
    """The limit that refused a request, from its errors, as the metrics name it: the setting (max_depth,
    max_cost, ...) or int_range; None when no limit did."""
    for error in errors:
        original = error.original_error
        if isinstance(original, LimitExceeded):
            return str(original.extensions["limit"]["name"])
        if isinstance(original, ArgumentOutOfRange):
            return "int_range"
    return None


def out_of_range(coord: str, n: int, lo: int, hi: int, variable: str | None = None) -> ArgumentOutOfRange:
    what = f"variable ${variable} (argument {coord})" if variable else f"argument {coord}"
    return ArgumentOutOfRange(f"{what} must lie within [{lo}, {hi}], got {n}", coord, lo, hi)


def _int_errors(value: Any, type_: Any, coord: str, lo: int, hi: int, variable: str) -> list[GraphQLError]:
    """Int values out of range in a variable's raw value (before coercion; what will not coerce is left
    to graphql-core's own variable errors)."""
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if value is None:
        return []
    if isinstance(type_, GraphQLList):
        out: list[GraphQLError] = []
        for item in value if isinstance(value, list) else (value,):
            out += _int_errors(item, type_.of_type, coord, lo, hi, variable)
        return out
    if type_ is GraphQLInt:
        if isinstance(value, int) and not isinstance(value, bool) and not lo <= value <= hi:
            return [out_of_range(coord, value, lo, hi, variable).graphql()]
        return []
    if isinstance(type_, GraphQLInputObjectType) and isinstance(value, dict):
        out = []
        for k, v in value.items():
            fdef = type_.fields.get(k)
            if fdef is not None:
                out += _int_errors(v, fdef.type, f"{type_.name}.{k}", lo, hi, variable)
        return out
    return []


class Limits:
    """The limits of one gateway config, and the shapes of the documents seen (bounded)."""

    def __init__(self, settings: Any, max_ids: int) -> None:
        self.enabled: bool = settings.enabled
        self.max_body_bytes: int = settings.max_body_bytes
        self.max_tokens: int = settings.max_tokens
        self.max_depth: int = settings.max_depth
        self.max_aliases: int = settings.max_aliases
        self.max_cost: int = settings.max_cost
        self.max_int_arg: int = settings.max_int_arg
        self.max_customers: int = settings.max_customers if settings.max_customers is not None else max_ids
        self.max_ids = max_ids  # customers(ids:) beyond it is refused by the field itself, touching none
        self.list_size_estimate: int = settings.list_size_estimate
        self.int_arg_bounds: dict[str, tuple[int, int]] = {k: (int(v[0]), int(v[1]))
                                                           for k, v in settings.int_arg_bounds.items()}
        self.deadline_s: float = settings.request_deadline_s
        self._shapes: OrderedDict[str, dict[str | None, Shape]] = OrderedDict()
        self._has_int: dict[Any, bool] = {}

    def bounds(self, coord: str) -> tuple[int, int]:
        return self.int_arg_bounds.get(coord) or (0, self.max_int_arg)

    def has_int(self, type_: Any) -> bool:
        """Whether values of this input type may hold an Int anywhere."""
        while isinstance(type_, (GraphQLNonNull, GraphQLList)):
            type_ = type_.of_type
        if type_ is GraphQLInt:
            return True
        if not isinstance(type_, GraphQLInputObjectType):
            return False
        found = self._has_int.get(type_)
        if found is None:
            self._has_int[type_] = False  # a recursive input type stops here
            found = self._has_int[type_] = any(self.has_int(f.type) for f in type_.fields.values())
        return found

    # --- per document --------------------------------------------------------------------------------
    def shape(self, schema: GraphQLSchema, document: DocumentNode, query: str, op_name: str | None) -> Shape | None:
        shapes = self._shapes.get(query)
        if shapes is None:
            shapes = self.analyze(schema, document)
            self._shapes[query] = shapes
            if len(self._shapes) > MAXSIZE:
                self._shapes.popitem(last=False)
        return shapes.get(op_name)

    def analyze(self, schema: GraphQLSchema, document: DocumentNode) -> dict[str | None, Shape]:
        """Each operation's shape, by name (and by None when the document holds just one)."""
        ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        out: dict[str | None, Shape] = {}
        for op in ops:
            shape = self.analyze_operation(schema, document, op)
            if op.name is not None:
                out[op.name.value] = shape
            if len(ops) == 1:
                out[None] = shape
        return out

    def analyze_operation(self, schema: GraphQLSchema, document: DocumentNode, op: OperationDefinitionNode) -> Shape:
        walk = _Walk(self, schema, document, op)
        root = {OperationType.QUERY: schema.query_type, OperationType.MUTATION: schema.mutation_type,
                OperationType.SUBSCRIPTION: schema.subscription_type}[op.operation]
        shape = Shape()
        if root is None:
            return shape
        fields: list[FieldNode] = []
        walk.root_fields(root, op.selection_set, fields)
        id_lists: list[tuple[str, Any]] = []
        cost: Expr = 0
        for node in fields:
            name = node.name.value
            d, a, _, item = walk.sized_field(root, node, None)
            shape.depth = max(shape.depth, d)
            shape.aliases += a
            if name.startswith("__"):
                continue  # introspection reads the schema in memory: depth and aliases count, cost does not
            fdef = root.fields.get(name)
            if fdef is None:
                continue
            rtype = fdef.type.of_type if isinstance(fdef.type, GraphQLNonNull) else fdef.type
            cost = _max(cost, item)
            shape.customers += self._customers(root, name, node, rtype, walk, id_lists)
        shape.cost = cost
        shape.id_lists = tuple(id_lists)
        shape.errors = walk.errors
        shape.int_vars = tuple(walk.int_vars)
        shape.dynamic = bool(id_lists or walk.int_vars or not isinstance(cost, int))
        return shape

    def _customers(self, root: GraphQLObjectType, name: str, node: FieldNode, rtype: Any, walk: _Walk,
                   id_lists: list[tuple[str, Any]]) -> int:
        """The static part of the customers this root field touches; a variable list of ids noted."""
        if name == "findCustomers":
            return self.max_ids
        if name in ID_LISTS:
            ids = next((a.value for a in node.arguments or () if a.name.value == ID_LISTS[name]), None)
            if isinstance(ids, VariableNode):
                id_lists.append((ids.name.value, walk.defaults.get(ids.name.value)))
                return 0
            n = len(ids.values) if isinstance(ids, ListValueNode) else 1
            return n if n <= self.max_ids else 0
        return 1 if get_named_type(rtype).name == "Customer" else 0

    # --- per request ---------------------------------------------------------------------------------
    def check(self, schema: GraphQLSchema, document: DocumentNode, query: str, op_name: str | None,
              variables: dict[str, Any] | None) -> list[GraphQLError]:
        """The limit errors of this request (empty: within every limit)."""
        shape = self.shape(schema, document, query, op_name)
        if shape is None:
            return []  # an unknown operation name: graphql-core reports it
        if shape.depth > self.max_depth:
            return [LimitExceeded(f"the query nests fields {shape.depth} deep (counted up to one past the "
                                  f"limit); at most {self.max_depth} allowed",
                                  "max_depth", self.max_depth, shape.depth).graphql()]
        if shape.aliases > self.max_aliases:
            return [LimitExceeded(f"the query has {shape.aliases} aliases; at most {self.max_aliases} allowed",
                                  "max_aliases", self.max_aliases, shape.aliases).graphql()]
        if shape.errors:
            return shape.errors
        if not shape.dynamic:
            customers, cost = shape.customers, shape.cost
        else:
            v = variables or {}
            customers = shape.customers
            for name, default in shape.id_lists:
                ids = v.get(name, default)
                n = len(ids) if isinstance(ids, list) else (0 if ids is None else 1)
                customers += n if n <= self.max_ids else 0
            errors: list[GraphQLError] = []
            for name, default, type_, coord, lo, hi in shape.int_vars:
                errors += _int_errors(v.get(name, default), type_, coord, lo, hi, name)
            if errors:
                return errors
            cost = _ev(shape.cost, v)
        if customers > self.max_customers:
            return [LimitExceeded(f"the request touches {customers} customers; at most {self.max_customers} "
                                  "across all root fields and aliases", "max_customers", self.max_customers,
                                  customers).graphql()]
        if isinstance(cost, int) and cost > self.max_cost:
            return [LimitExceeded(f"the query's estimated cost is {cost} objects for one customer; at most "
                                  f"{self.max_cost} (lists count their `first`)", "max_cost", self.max_cost,
                                  cost).graphql()]
        return []

    def over_tokens(self, query: str) -> bool:
        """Whether the query surely has more than max_tokens tokens, found at C speed before parsing.

        graphql-core's lexer takes ~10 us a token, and its syntax error then locates itself by scanning
        the whole text (~40 ms on a 1 MB one-line query): a token flood cost ~100 ms to refuse. This
        counts GraphQL's lexical tokens (spec 2.1) with one regex and stops at the limit. It may count
        fewer than the lexer (a '#' inside a string cuts the rest of its line), never more, so a query
        it passes is still held to the limit by the parse itself."""
        if len(query) <= self.max_tokens:  # a token is at least one character
            return False
        stripped = _COMMENT.sub("", query)
        return sum(1 for _ in islice(_TOKEN.finditer(stripped), self.max_tokens + 1)) > self.max_tokens

    def too_many_tokens(self) -> GraphQLError:
        return LimitExceeded(f"the query has more than {self.max_tokens} tokens", "max_tokens",
                             self.max_tokens).graphql()


# --- HTTP ----------------------------------------------------------------------------------------------
async def read_body(request: Any, cap: int) -> bytes:
    """The request body, refused with PayloadTooLarge on a Content-Length above `cap` before reading and
    as soon as the bytes read pass it (a chunked or lying body): never more than cap + one chunk held."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > cap:
                raise PayloadTooLarge
        except ValueError:
            pass  # the server has already refused a malformed length
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Disconnected(Exception):
    pass


async def guarded(receive: Callable[[], Awaitable[dict[str, Any]]], work: Awaitable[T], deadline: float) -> T:
    """`work` run in this task, cancelled when the client disconnects (Disconnected) or the loop's clock
    passes `deadline` (TimeoutError). Call once the body has been read: the receive channel then only
    says `http.disconnect`. A timer handle rather than asyncio.timeout (measured: half the cost)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    why: list[type[Exception]] = []  # what cancelled the task, once per cancel()

    def stop(reason: type[Exception]) -> None:
        if not why:
            why.append(reason)
            task.cancel()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stop(Disconnected)

    watcher = loop.create_task(watch())
    timer = loop.call_at(deadline, stop, TimeoutError)
    try:
        return await work
    except asyncio.CancelledError:
        if why:
            task.uncancel()
            raise why[0] from None
        raise
    finally:
        timer.cancel()
        watcher.cancel()
