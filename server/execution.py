"""graphql-core's executor with one-step paths for plain leaf fields and for lists of leaf-only
objects, and with sub-field collection shared between requests of the same cached document.

Most of a Customer view's ~400 fields are leaves read straight off a record: an id, a
status. graphql-core takes each through a Path, build_resolve_info, the resolver, the
awaitable checks and complete_value: about 5 us a field, two thirds of a warm view's CPU (py-spy).
For a strawberry "basic" field (no resolver, no arguments, no extensions) of a scalar or enum type,
or a list of them, this reads the attribute and coerces it in one step. Anything unusual (a null on
a non-null field, a value that does not coerce, an attribute that raises) goes the standard way, so
errors, paths and null propagation are graphql-core's own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

from graphql import (
    GraphQLBoolean,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLString,
    OperationDefinitionNode,
)
from graphql.execution.executor import gather_with_cancel
from graphql.pyutils import Path, Undefined
from graphql.type import is_leaf_type
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

SLOW: Any = object()  # "take the standard path for this field" (Any: it stands in for any value)
Reader = Callable[[Any], Any]
# Leaf types whose coercion returns a value of this Python type unchanged.
_UNCHANGED: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


def _coercer(leaf: Any, nullable: bool) -> Reader:
    """Coerce one leaf value as graphql-core would, or SLOW where it would raise or null out."""
    coerce = leaf.coerce_output_value
    same = _UNCHANGED.get(leaf)
    # strawberry's enum type finds a member's name by scanning its values on every call; look it up.
    wrapped = getattr(leaf, "wrapped_cls", None)
    names = {m: n for m in wrapped for n, d in leaf.values.items() if m.value == d.value} if wrapped else {}

    def value(v: Any) -> Any:
        if v is None:
            return None if nullable else SLOW
        if type(v) is same:
            return v
        if type(v) is wrapped:
            return names.get(v, SLOW)
        try:
            out = coerce(v)
        except Exception:  # noqa: BLE001 - the standard path reports it
            return SLOW
        return SLOW if out is None or out is Undefined else out

    return value


def _reader(field_def: Any) -> Reader | None:
    """A one-step reader for a plain leaf (or list-of-leaf) field; None when it needs the full path."""
    field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF) if field_def else None
    if not isinstance(field, StrawberryField) or not field.is_basic_field or field_def.args \
            or field.default_resolver is not getattr or not getattr(field_def.resolve, "_is_default", False):
        return None
    attr = field.python_name
    kind = field_def.type
    nullable = not isinstance(kind, GraphQLNonNull)
    kind = kind if nullable else kind.of_type
    if not isinstance(kind, GraphQLList):
        if not is_leaf_type(kind):
            return None
        one = _coercer(kind, nullable)

        def read(source: Any) -> Any:
            try:
                v = getattr(source, attr)
            except Exception:  # noqa: BLE001
                return SLOW
            return one(v)

        return read
    item = kind.of_type
    item_nullable = not isinstance(item, GraphQLNonNull)
    item = item if item_nullable else item.of_type
    if not is_leaf_type(item):
        return None
    each = _coercer(item, item_nullable)

    def read_list(source: Any) -> Any:
        try:
            v = getattr(source, attr)
        except Exception:  # noqa: BLE001
            return SLOW
        if v is None:
            return None if nullable else SLOW
        if type(v) is not list and type(v) is not tuple:
            return SLOW
        out = [each(i) for i in v]
        return SLOW if SLOW in out else out

    return read_list


def _complete_rows(item_type: GraphQLObjectType, row: Row, items: Any, item_nullable: bool) -> Any:
    """Each item as a dict of its selected leaves; SLOW at the first thing the standard path must handle."""
    check = item_type.is_type_of
    name = item_type.name
    out: list[Any] = []
    for item in items:
        if item is None:
            if not item_nullable:
                return SLOW
            out.append(None)
            continue
        if check is not None:
            try:
                if check(item, None) is not True:  # type: ignore[arg-type]  # False or an awaitable: standard path
                    return SLOW
            except Exception:  # noqa: BLE001 - e.g. one that needs the resolve info
                return SLOW
        values: dict[str, Any] = {}
        for response_name, read in row:
            v = name if read is None else read(item)
            if v is SLOW:
                return SLOW
            values[response_name] = v
        out.append(values)
    return out


def _plain(selection_set: Any) -> bool:
    """Whether no selection below carries a directive (@skip, @include, @defer, ...)."""
    for selection in selection_set.selections:
        if selection.directives:
            return False
        inner = getattr(selection, "selection_set", None)
        if inner is not None and not _plain(inner):
            return False
    return True


def _static(operation: OperationDefinitionNode, fragments: dict[str, Any]) -> bool:
    """Whether the operation's field collection cannot depend on its variables."""
    return _plain(operation.selection_set) and all(
        not f.variable_signatures and not f.definition.directives and _plain(f.definition.selection_set)
        for f in fragments.values())


# Per operation (kept alive here, so its id is not reused while listed): the sub-field collections it
# shares between requests, or None where directives make them depend on the variables.
_collections: OrderedDict[int, tuple[OperationDefinitionNode, dict[Any, Any] | None]] = OrderedDict()
COLLECTIONS_MAX = 256


def _shared_collections(operation: OperationDefinitionNode, fragments: dict[str, Any]) -> dict[Any, Any] | None:
    entry = _collections.get(id(operation))
    if entry is None or entry[0] is not operation:
        entry = _collections[id(operation)] = (operation, {} if _static(operation, fragments) else None)
        if len(_collections) > COLLECTIONS_MAX:
            _collections.popitem(last=False)
    return entry[1]


Row = list[tuple[str, Reader | None]]  # an object's selected fields: response name, reader (None: __typename)


class Executor(StrawberryGraphQLCoreExecutionContext):
    _readers: ClassVar[dict[GraphQLObjectType, dict[str, Reader | None]]] = {}  # by type: one schema each
    _shared: Any = SLOW  # this request's operation's collections (None: not shareable); SLOW: not looked up
    _rows: dict[int, Row | None] | None = None  # this request's leaf-only selections, by grouped field set

    def _static_operation(self) -> bool:
        shared = self._shared
        if shared is SLOW:
            shared = self._shared = _shared_collections(self.operation, self.fragments)
        return shared is not None

    def _row(self, item_type: GraphQLObjectType, field_details_list: Any) -> Row | None:
        """The object's selected fields when every one is a plain leaf; else None."""
        grouped, defers, _ = self.collect_subfields(item_type, field_details_list)
        rows = self._rows
        if rows is None:
            rows = self._rows = {}
        row = rows.get(id(grouped), SLOW)  # grouped is kept alive by the collection memo: its id is stable
        if row is SLOW:
            row = rows[id(grouped)] = None if defers else self._leaf_row(item_type, grouped)
        return row  # type: ignore[return-value]

    def _leaf_row(self, item_type: GraphQLObjectType, grouped: Any) -> Row | None:
        readers = self._readers_of(item_type)
        row: Row = []
        for response_name, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                row.append((response_name, None))
                continue
            read = readers.get(name, SLOW)
            if read is SLOW:
                read = readers[name] = _reader(self.schema.get_field(item_type, name))
            if read is None:
                return None
            row.append((response_name, read))
        return row

    def complete_list_value(self, return_type: Any, field_details_list: Any, info: Any, path: Path, result: Any,
                            position_context: Any) -> Any:
        """Lists of objects whose selected fields are all plain leaves (e.g. line items)
        are completed in one step per item: graphql-core's path per item (complete_value twice,
        complete_object_value, is_type_of, collecting, execute_fields, a Path) was ~8 us an object.
        Anything unusual in any item takes the standard path for the whole list; nothing has happened
        by then (reading leaves has no side effects), so errors are graphql-core's own."""
        item_type = return_type.of_type
        item_nullable = not isinstance(item_type, GraphQLNonNull)
        if not item_nullable:
            item_type = item_type.of_type
        middleware = self.middleware_manager
        if isinstance(item_type, GraphQLObjectType) and (type(result) is list or type(result) is tuple) \
                and position_context is None and not (middleware is not None and middleware._middleware_resolvers) \
                and self._static_operation():
            row = self._row(item_type, field_details_list)
            if row is not None:
                done = _complete_rows(item_type, row, result, item_nullable)
                if done is not SLOW:
                    return done
        return super().complete_list_value(return_type, field_details_list, info, path, result, position_context)

    def collect_subfields(self, return_type: GraphQLObjectType, field_details_list: Any) -> Any:
        """graphql-core collects each object's sub-fields once per request; a cached document's operation
        always collects the same ones, so they are collected once per operation (cProfile: ~10% of a warm
        view went to visit_selection_sets)."""
        shared = self._shared
        if shared is SLOW:
            shared = self._shared = _shared_collections(self.operation, self.fragments)
        if shared is None or any(d.defer_usage is not None or d.fragment_variable_values is not None
                                 for d in field_details_list):
            return super().collect_subfields(return_type, field_details_list)
        key = (return_type, *[id(d.node) for d in field_details_list])
        collected = shared.get(key)
        if collected is None:
            collected = shared[key] = super().collect_subfields(return_type, field_details_list)
        return collected

    def _readers_of(self, parent_type: GraphQLObjectType) -> dict[str, Reader | None]:
        readers = self._readers.get(parent_type)
        if readers is None:
            readers = self._readers[parent_type] = {}
        return readers

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Path | None,
                       grouped_field_set: Any, position_context: Any) -> Any:
        """graphql-core's execute_fields, with plain leaves read in one step."""
        middleware = self.middleware_manager
        if position_context is not None or (middleware is not None and middleware._middleware_resolvers):
            # @defer/@stream, or an extension that wraps every resolver: the standard path throughout
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        readers = self._readers_of(parent_type)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                name = field_details_list[0].node.name.value
                read = readers.get(name, SLOW)
                if read is SLOW:
                    read = readers[name] = _reader(self.schema.get_field(parent_type, name))
                if read is not None:
                    value = read(source_value)
                    if value is not SLOW:
                        results[response_name] = value
                        continue
                result = self.execute_field(parent_type, source_value, field_details_list,
                                            Path(path, response_name, parent_type.name), position_context)
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[f] for f in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()
