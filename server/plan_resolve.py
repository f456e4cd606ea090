"""A strawberry field's own Python resolver, called by the plan without strawberry's wrapper.

The resolver strawberry installs on each GraphQLField, on every call: builds a list and a dict for the
arguments, converts them (strawberry.types.arguments.convert_arguments), applies each field extension's
argument mapping, chains the extensions with functools.partial and closures, then calls the field's
`get_result`, which calls the resolver. For a field with no extensions (permission classes are one),
no directives and a schema with no exception handlers, all but the conversion and the call is
nothing, so the plan does those two itself: the same resolver, the same converted arguments, the
same `Info`, the same exceptions (raised here, reported by the plan where the wrapper's would be).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from graphql import GraphQLField, GraphQLResolveInfo, GraphQLSchema
from strawberry.schema.schema import Schema
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

REPLACED = "customer_graph.replaced_resolver"  # a GraphQLField extension: see plan.replace_resolver
Resolve = Callable[..., Any]  # as GraphQLField.resolve: (source, info, **arguments)
_IMMUTABLE = (str, int, float, bool)


def direct_resolver(schema: GraphQLSchema, field_def: GraphQLField, static: dict[str, Any] | None) -> Resolve | None:
    """The field's resolver without strawberry's wrapper, or None where the wrapper does more than
    convert and call (or the field is not a plain strawberry field with a resolver of its own).
    `static`: the field's coerced arguments when they do not depend on the variables (else None)."""
    extensions = field_def.extensions or {}
    field = extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    owner = (schema.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(field, StrawberryField) or not isinstance(owner, Schema) or extensions.get(REPLACED):
        return None
    resolver = field.base_resolver
    if resolver is None or field.extensions or field.directives or owner.exception_handlers \
            or not callable(resolver.wrapped_func):
        return None
    call = resolver.wrapped_func
    info_class, config = owner.config.info_class, owner.config
    registry = owner.schema_converter.scalar_registry
    arguments = field.arguments
    as_self = resolver.self_parameter is not None
    sources = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p is not None]
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None
    fixed = _converted_once(static, arguments, registry, config)

    def resolve(source: Any, info: GraphQLResolveInfo, **raw: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=field)
        if fixed is not None:
            kwargs = dict(fixed)
        elif arguments:
            kwargs = convert_arguments(raw, arguments, scalar_registry=registry, config=config, info=strawberry_info)
        else:
            kwargs = {}
        for name in sources:
            kwargs[name] = source
        if info_name is not None:
            kwargs[info_name] = strawberry_info
        return call(source, **kwargs) if as_self else call(**kwargs)

    return resolve


def _converted_once(static: dict[str, Any] | None, arguments: list[Any], registry: Any,
                    config: Any) -> dict[str, Any] | None:
    """Static arguments converted at planning, when every converted value is immutable (a number, a
    string, an enum member: nothing a resolver could change for the next request); else None, and
    strawberry converts them per call as its wrapper does (lists and input objects are new each time)."""
    if static is None or not arguments:
        return None
    try:
        converted = convert_arguments(static, arguments, scalar_registry=registry, config=config)
    except Exception:  # noqa: BLE001 - converted per call, where the error is the field's
        return None
    if all(v is None or type(v) in _IMMUTABLE or isinstance(v, Enum) for v in converted.values()):
        return converted
    return None
