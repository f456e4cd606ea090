"""What each role may read and write: one schema per restricted role, built once at start.

A role's schema is the gateway's schema with the fields the role may not read answering null plus a
FORBIDDEN error (their resolvers are never called, so no source is asked), masked fields passing their
value through a mask, and mutations outside the role's list refused unrun. Everything is decided
when the schema is built, so a request pays nothing per allowed field: the executor's one-step path
for plain leaves stays as it is, and a role that may read everything uses the gateway's own schema.
Validation is cached per schema and query text (server/query_cache.py), so a role's checks of a
document are done once.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    ValidationRule,
    default_field_resolver,
    get_named_type,
)
from graphql.language import FieldNode
from strawberry.extensions import AddValidationRules

from resolvers import audit
from resolvers.errors import Forbidden
from server.plan import replace_resolver
from server.settings import RoleSettings

Mask = Callable[[str], str | None]
DOT = "\u2022"


def mask_email(value: str) -> str:
    """c\u2022\u2022\u2022@inbox.example: the first letter and the domain."""
    local, at, domain = value.partition("@")
    return f"{local[:1]}{DOT * 3}@{domain}" if at else DOT * 3


def mask_phone(value: str) -> str:
    """Every digit but the last three hidden; the + and the length kept."""
    digits = sum(c.isdigit() for c in value)
    seen = 0
    out = []
    for c in value:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - 3 else DOT)
        else:
            out.append(c)
    return "".join(out)


def mask_initials(value: str) -> str:
    """Anna de Vries -> A. d. V."""
    return " ".join(f"{w[0]}." for w in value.split())


_PHONE = re.compile(r"(\+|00)[0-9][0-9 ().-]{6,}")  # international form: a bare number may be a system's own id


def mask_contact(value: str) -> str:
    """An identifier that may be an email or a phone number (a system's id for the customer): masked as
    such when it is one, left as it is otherwise (a record number, an account number)."""
    if "@" in value:
        return mask_email(value)
    return mask_phone(value) if _PHONE.fullmatch(value) else value


MASKS: dict[str, Mask] = {"email": mask_email, "phone": mask_phone, "initials": mask_initials,
                          "contact": mask_contact, "drop": lambda _: None}


# A subgraph's own type (server/federation.py): `_service { sdl }` is the schema, governed by a role's
# `introspection` like __schema, not by its `read` patterns (Query._entities and Query._service are).
FEDERATION = frozenset(("_Service",))


def _matches(patterns: list[str], type_name: str, field_name: str) -> bool:
    coordinate = f"{type_name}.{field_name}"
    return any(fnmatch.fnmatchcase(coordinate, p) for p in patterns if "." in p or p == "*")


def readable(policy: RoleSettings, parent: GraphQLObjectType, name: str, field: GraphQLField) -> bool:
    """Whether the role may read `parent.name`: matched by `read`, not by `deny`, and its type not denied."""
    if not _matches(policy.read, parent.name, name) or _matches(policy.deny, parent.name, name):
        return False
    denied_types = {p for p in policy.deny if "." not in p and p != "*"}
    return parent.name not in denied_types and get_named_type(field.type).name not in denied_types


def mutation_allowed(policy: RoleSettings, name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in policy.mutations)


def unrestricted(policy: RoleSettings) -> bool:
    return policy.read == ["*"] and not policy.deny and not policy.mask and policy.mutations == ["*"] \
        and policy.introspection


def _forbidden(coordinate: str, role: str, what: str) -> Callable[..., Any]:
    message = f"{coordinate} is not available to role {role!r}" if what == "field" else \
        f"mutation {coordinate} is not allowed for role {role!r}"

    def resolve(_source: Any, info: Any, **args: Any) -> Any:
        if what == "mutation":  # refused writes are audited too
            given = args.get("input") if isinstance(args.get("input"), dict) else {}
            audit.record(info, coordinate, given.get("customerId"), given.get("idempotencyKey"), Forbidden.code)
        raise Forbidden(message, coordinate)

    return resolve


def _masking(resolve: Callable[..., Any], coordinate: str, how: str) -> Callable[..., Any]:
    mask = MASKS[how]

    def masked(value: Any, info: Any) -> Any:
        if value is None:
            return None
        info.context.masked[coordinate] = how
        if isinstance(value, str):
            return mask(value)
        if isinstance(value, (list, tuple)):
            out = [mask(v) if isinstance(v, str) else v for v in value]
            return [v for v in out if v is not None]
        return None if how == "drop" else value

    def wrapper(source: Any, info: Any, **args: Any) -> Any:
        value = resolve(source, info, **args)
        if isinstance(value, Awaitable):
            async def later() -> Any:
                return masked(await value, info)
            return later()
        return masked(value, info)

    return wrapper


def _nullable(field: GraphQLField) -> None:
    if isinstance(field.type, GraphQLNonNull):
        field.type = field.type.of_type


def restrict(schema: GraphQLSchema, role: str, policy: RoleSettings) -> None:
    """Rewrite a freshly built schema (this role's own) in place."""
    mutation_type = schema.mutation_type
    for type_name, gtype in schema.type_map.items():
        if type_name.startswith("__") or type_name in FEDERATION or not isinstance(gtype, GraphQLObjectType):
            continue
        for name, field in gtype.fields.items():
            coordinate = f"{type_name}.{name}"
            if gtype is mutation_type:
                if not mutation_allowed(policy, name):
                    replace_resolver(field, _forbidden(name, role, "mutation"))
                    _nullable(field)
            elif not readable(policy, gtype, name, field):
                replace_resolver(field, _forbidden(coordinate, role, "field"))
                if gtype is schema.subscription_type:  # refused when subscribing, before it listens to anything
                    field.subscribe = field.resolve
                _nullable(field)
            elif coordinate in policy.mask:
                replace_resolver(field, _masking(field.resolve or default_field_resolver, coordinate,
                                                 policy.mask[coordinate]))
                if policy.mask[coordinate] == "drop":
                    _nullable(field)


class NoIntrospection(ValidationRule):
    """__schema, __type and a subgraph's _service (its SDL) refused for roles without introspection
    (__typename stays allowed)."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value in ("__schema", "__type", "_service"):
            self.report_error(GraphQLError("introspection is not allowed for this role", node,
                                           extensions={"code": "FORBIDDEN"}))


def check_masks(policy: RoleSettings, role: str, schema: GraphQLSchema) -> None:
    """Every configured mask names a real field; a typo must not silently leave a value unmasked."""
    for coordinate in policy.mask:
        type_name, _, field_name = coordinate.partition(".")
        gtype = schema.type_map.get(type_name)
        if not isinstance(gtype, GraphQLObjectType) or field_name not in gtype.fields:
            raise ValueError(f"roles.{role}.mask: {coordinate} is not a field of the schema")


class Policies:
    """The schema each role executes against."""

    def __init__(self, base: strawberry.Schema, roles: dict[str, RoleSettings],
                 build: Callable[..., strawberry.Schema]) -> None:
        self.base = base
        self.schemas: dict[str, strawberry.Schema] = {}
        for role, policy in roles.items():
            check_masks(policy, role, base._schema)
            if unrestricted(policy):
                self.schemas[role] = base
                continue
            extra = [] if policy.introspection else [AddValidationRules([NoIntrospection])]
            schema = build(extra)
            restrict(schema._schema, role, policy)
            self.schemas[role] = schema

    def schema(self, role: str | None) -> strawberry.Schema:
        return self.base if role is None else self.schemas[role]
