"""Running a compiled plan (server/plan.py): the spec's ExecuteSelectionSet and CompleteValue, step for
step as graphql-core 3.3 takes them (the same errors, paths, locations, null propagation and error
order), over the plan's precomputed fields instead of collecting, looking up and coercing per object.

Plain leaves are read in one step (`FieldPlan.read`); a list of objects whose selected fields are all
such leaves is completed in one pass. Anything unusual (a null in a non-null field, a value that does
not coerce, an attribute that raises, an item of the wrong type) takes the standard path, which
reports it as graphql-core does: reading a record has no side effect, so nothing has happened yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    is_abstract_type,
    is_leaf_type,
    is_object_type,
    located_error,
)
from graphql.pyutils import Path, Undefined, gather_with_cancel, inspect, is_iterable

from server.plan import SLOW, FieldPlan

Row = list[tuple[str, Any]]  # a leaf-only object's fields: response key, reader (None: __typename)


class Run:
    """One request's execution of a plan, on the graphql-core executor that built its variables."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self.variables = executor.variable_values
        self.is_awaitable = executor.is_awaitable
        self.hide_suggestions: bool = executor.hide_suggestions
        self.errors: list[GraphQLError] = []
        self._nulled: set[Path | None] = set()
        self._background: set[asyncio.Future[Any]] = set()

    def run(self, root: list[FieldPlan], root_type: GraphQLObjectType,
            root_value: Any) -> ExecutionResult | Awaitable[ExecutionResult]:
        try:
            data = self.fields(root, root_type, root_value, None)
        except GraphQLError as error:  # a non-null root field failed: no data at all
            self.add_error(error, None)
            return ExecutionResult(None, self.errors)
        if not self.is_awaitable(data):
            return ExecutionResult(data, self.errors or None)

        async def finish() -> ExecutionResult:
            try:
                done = await data
            except GraphQLError as error:
                self.add_error(error, None)
                return ExecutionResult(None, self.errors)
            return ExecutionResult(done, self.errors or None)

        return finish()

    def add_error(self, error: GraphQLError, path: Path | None) -> None:
        """Recorded unless its position, or one above it, was already nulled by another error."""
        nulled = self._nulled
        if None in nulled:
            return
        at = path
        while at is not None:
            if at in nulled:
                return
            at = at.prev
        nulled.add(path)
        self.errors.append(error)

    def field_error(self, raw: Exception, return_type: GraphQLOutputType, nodes: list[Any], path: Path) -> None:
        error = located_error(raw, nodes, path.as_list())
        if isinstance(return_type, GraphQLNonNull):
            raise error  # null propagates to the nearest nullable parent
        self.add_error(error, path)

    def settle(self, awaitables: list[Any]) -> None:
        """A sibling failed: the others still run to their end, their outcome observed and dropped."""
        future = asyncio.gather(*awaitables, return_exceptions=True)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def fields(self, fields: list[FieldPlan], parent_type: GraphQLObjectType, source: Any,
               path: Path | None) -> Any:
        """ExecuteSelectionSet, the fields at once: a dict, or an awaitable of it."""
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        pending: list[str] = []
        try:
            for field in fields:
                key = field.key
                read = field.read
                if read is not None:
                    value = read(source)
                    if value is not SLOW:
                        results[key] = value
                        continue
                if field.typename:
                    results[key] = parent_type.name
                    continue
                result = results[key] = self.field(field, parent_type, source, Path(path, key, parent_type.name))
                if is_awaitable(result):
                    pending.append(key)
        except Exception:
            if pending:
                self.settle([results[k] for k in pending])
            raise
        return _filled(results, pending) if pending else results

    def info(self, field: FieldPlan, parent_type: GraphQLObjectType, path: Path) -> GraphQLResolveInfo:
        # strawberry's executor builds its own kind of info (the coerced variables, its operation extensions)
        return self.executor.build_resolve_info(field.definition, field.nodes, parent_type, path)  # type: ignore[no-any-return]

    def field(self, field: FieldPlan, parent_type: GraphQLObjectType, source: Any, path: Path) -> Any:
        """ExecuteField: resolve, then complete; a field error is nulled here or raised to the parent."""
        return_type = field.return_type
        info = self.info(field, parent_type, path)
        try:
            result = field.resolve(source, info, **field.arguments(self.variables, self.hide_suggestions))
            if self.is_awaitable(result):
                return self.complete_awaitable(field, return_type, info, path, result)
            completed = self.complete(field, return_type, info, path, result)
            if self.is_awaitable(completed):
                return self.await_completed(completed, field, return_type, path)
        except Exception as raw:
            self.field_error(raw, return_type, field.nodes, path)
            return None
        return completed

    async def await_completed(self, completed: Any, field: FieldPlan, return_type: GraphQLOutputType,
                              path: Path) -> Any:
        try:
            return await completed
        except Exception as raw:
            self.field_error(raw, return_type, field.nodes, path)
            return None

    async def complete_awaitable(self, field: FieldPlan, return_type: GraphQLOutputType, info: GraphQLResolveInfo,
                                 path: Path, result: Any) -> Any:
        try:
            completed = self.complete(field, return_type, info, path, await result)
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw:
            self.field_error(raw, return_type, field.nodes, path)
            return None
        return completed

    def complete(self, field: FieldPlan, return_type: GraphQLOutputType, info: GraphQLResolveInfo, path: Path,
                 result: Any) -> Any:
        """CompleteValue."""
        if isinstance(result, Exception):
            raise result
        if isinstance(return_type, GraphQLNonNull):
            completed = self.complete(field, return_type.of_type, info, path, result)
            if completed is None:
                raise TypeError(f"Cannot return null for non-nullable field {info.parent_type}.{info.field_name}.")
            return completed
        if result is None or result is Undefined:
            return None
        if isinstance(return_type, GraphQLList):
            return self.complete_list(field, return_type, info, path, result)
        if is_leaf_type(return_type):
            coerced = return_type.coerce_output_value(result)  # type: ignore[union-attr]
            if coerced is Undefined or coerced is None:
                raise TypeError(f"Expected `{inspect(return_type)}.coerce_output_value({inspect(result)})`"
                                f" to return non-nullable value, returned: {inspect(coerced)}")
            return coerced
        if is_abstract_type(return_type):
            return self.complete_abstract(field, return_type, info, path, result)
        if is_object_type(return_type):
            return self.complete_object(field, return_type, info, path, result)  # type: ignore[arg-type]
        raise TypeError(f"Cannot complete value of unexpected output type: '{inspect(return_type)}'.")

    def complete_list(self, field: FieldPlan, return_type: GraphQLList[Any], info: GraphQLResolveInfo, path: Path,
                      result: Any) -> Any:
        item_type = return_type.of_type
        if self.executor.is_async_iterable(result):
            return self._complete_async_list(field, item_type, info, path, result)
        if not is_iterable(result):
            raise GraphQLError(f"Expected Iterable, but did not find one for field"
                               f" '{info.parent_type}.{info.field_name}'.")
        if type(result) is list or type(result) is tuple:
            done = self._rows(field, item_type, result)
            if done is not SLOW:
                return done
        return self.complete_items(field, item_type, info, path, result)

    async def _complete_async_list(self, field: FieldPlan, item_type: Any, info: GraphQLResolveInfo, path: Path,
                                   result: Any) -> Any:
        """An async iterable (none of our resolvers returns one): its items once all have come."""
        items = [item async for item in result]
        completed = self.complete_items(field, item_type, info, path, items)
        return await completed if self.is_awaitable(completed) else completed

    def complete_items(self, field: FieldPlan, item_type: Any, info: GraphQLResolveInfo, path: Path,
                       items: Any) -> Any:
        is_awaitable = self.is_awaitable
        out: list[Any] = []
        pending: list[int] = []
        try:
            for index, item in enumerate(items):
                item_path = path.add_key(index, None)
                if is_awaitable(item):
                    out.append(self.complete_awaitable(field, item_type, info, item_path, item))
                    pending.append(index)
                    continue
                try:
                    completed = self.complete(field, item_type, info, item_path, item)
                    if is_awaitable(completed):
                        out.append(self.await_completed(completed, field, item_type, item_path))
                        pending.append(index)
                        continue
                    out.append(completed)
                except Exception as raw:
                    self.field_error(raw, item_type, field.nodes, item_path)
                    out.append(None)
        except Exception:
            if pending:
                self.settle([out[i] for i in pending])
            raise
        return _filled(out, pending) if pending else out

    def _rows(self, field: FieldPlan, item_type: Any, items: Any) -> Any:
        """A list of objects whose selected fields are all plain leaves (line items, say), in one pass
        (graphql-core: a path, is_type_of, collecting and executing fields per item, ~8 us an object);
        SLOW at the first item the standard path must handle."""
        nullable = not isinstance(item_type, GraphQLNonNull)
        object_type = item_type if nullable else item_type.of_type
        if not isinstance(object_type, GraphQLObjectType):
            return SLOW
        row = field.rows.get(object_type, SLOW)
        if row is SLOW:
            fields = field.sub(object_type)
            row = field.rows[object_type] = None if any(f.read is None and not f.typename for f in fields) \
                else [(f.key, f.read) for f in fields]
        if row is None:
            return SLOW
        check, name = object_type.is_type_of, object_type.name
        out: list[Any] = []
        for item in items:
            if item is None:
                if not nullable:
                    return SLOW
                out.append(None)
                continue
            if check is not None:
                try:
                    if check(item, None) is not True:  # type: ignore[arg-type]  # False or awaitable: standard path
                        return SLOW
                except Exception:  # noqa: BLE001 - e.g. one that needs the resolve info
                    return SLOW
            values: dict[str, Any] = {}
            for key, read in row:
                value = name if read is None else read(item)
                if value is SLOW:
                    return SLOW
                values[key] = value
            out.append(values)
        return out

    def complete_abstract(self, field: FieldPlan, return_type: Any, info: GraphQLResolveInfo, path: Path,
                          result: Any) -> Any:
        resolve_type = return_type.resolve_type or self.executor.type_resolver
        runtime = resolve_type(result, info, return_type)
        if self.is_awaitable(runtime):
            async def later() -> Any:
                value = self.complete_object(field, self.runtime_type(await runtime, return_type, field, info, result),
                                             info, path, result)
                return await value if self.is_awaitable(value) else value

            return later()
        return self.complete_object(field, self.runtime_type(runtime, return_type, field, info, result), info, path,
                                    result)

    def runtime_type(self, name: Any, return_type: Any, field: FieldPlan, info: GraphQLResolveInfo,
                     result: Any) -> GraphQLObjectType:
        """graphql-core's checks of what an abstract type resolved to, in its words."""
        where = f"for field '{info.parent_type}.{info.field_name}'"
        if name is None:
            raise GraphQLError(f"Abstract type '{return_type}' must resolve to an Object type at runtime {where}."
                               f" Either the '{return_type}' type should provide a 'resolve_type' function"
                               " or each possible type should provide an 'is_type_of' function.", field.nodes)
        if not isinstance(name, str):
            raise GraphQLError(f"Abstract type '{return_type}' must resolve to an Object type at runtime {where}"
                               f" with value {inspect(result)}, received '{inspect(name)}',"
                               " which is not a valid Object type name.", field.nodes)
        schema = info.schema
        runtime = schema.get_type(name)
        if runtime is None:
            raise GraphQLError(f"Abstract type '{return_type}' was resolved to a type '{name}'"
                               " that does not exist inside the schema.", field.nodes)
        if not isinstance(runtime, GraphQLObjectType):
            raise GraphQLError(f"Abstract type '{return_type}' was resolved to a non-object type '{name}'.",
                               field.nodes)
        if not schema.is_sub_type(return_type, runtime):
            raise GraphQLError(f"Runtime Object type '{runtime}' is not a possible type for '{return_type}'.",
                               field.nodes)
        return runtime

    def complete_object(self, field: FieldPlan, object_type: GraphQLObjectType, info: GraphQLResolveInfo,
                        path: Path, result: Any) -> Any:
        if object_type.is_type_of:
            is_type_of = object_type.is_type_of(result, info)
            if self.is_awaitable(is_type_of):
                async def later() -> Any:
                    if not await is_type_of:
                        raise _not_of_type(object_type, result, field)
                    value = self.fields(field.sub(object_type), object_type, result, path)
                    return await value if self.is_awaitable(value) else value

                return later()
            if not is_type_of:
                raise _not_of_type(object_type, result, field)
        return self.fields(field.sub(object_type), object_type, result, path)


async def _filled(container: Any, pending: list[Any]) -> Any:
    """The container (an object's dict, a list) with its pending entries awaited in place, together."""
    if len(pending) == 1:
        container[pending[0]] = await container[pending[0]]
    else:
        for at, value in zip(pending, await gather_with_cancel(*(container[k] for k in pending)), strict=True):
            container[at] = value
    return container


def _not_of_type(object_type: GraphQLObjectType, result: Any, field: FieldPlan) -> GraphQLError:
    return GraphQLError(f"Expected value of type '{object_type}' but got: {inspect(result)}.", field.nodes)
