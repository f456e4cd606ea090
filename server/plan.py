"""The compiled plan of a validated query: per object type and selection, the fields to produce in
order, each with its definition, resolver, argument values and a one-step reader where it is a plain
leaf. Built at first use of an operation, kept per (schema, operation) next to the query cache.

graphql-core collects each object's sub-fields, looks up each field definition, builds a resolve info,
coerces the arguments and calls a resolver for every field of every object, on every request; a
cached document's operation always does the same, so all of that but the calls is done here once.

@skip/@include make the collection depend on the variables: each distinct set of the operation's
conditions (usually the only one, the empty set) gets a variant of its own.

Not planned (graphql-core's own executor runs them, see `plannable`): mutations and subscriptions,
directives other than @skip/@include on the way (@defer, @stream, ...), fragment variables.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLIncludeDirective,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLSkipDirective,
    GraphQLString,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    type_from_ast,
)
from graphql.execution.values import get_argument_values, get_directive_values
from graphql.pyutils import Undefined
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from server.plan_resolve import REPLACED, direct_resolver

SLOW: Any = object()  # "take the standard path for this field" (Any: it stands in for any value)
Reader = Callable[[Any], Any]
CONDITIONS = ("skip", "include")
MAXSIZE = 256  # as many plans as the query cache keeps documents
VARIANTS_MAX = 32  # distinct @skip/@include outcomes kept per operation; more are planned per request
# Leaf types whose coercion returns a value of this Python type unchanged.
_UNCHANGED: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}
# Number types whose coercion returns a value of this Python type unchanged strictly between these bounds.
_NUMBERS: dict[Any, tuple[type, float, float]] = {GraphQLInt: (int, GRAPHQL_MIN_INT - 1, GRAPHQL_MAX_INT + 1),
                                                  GraphQLFloat: (float, -math.inf, math.inf)}


def _coercer(leaf: Any, nullable: bool) -> Reader:
    """Coerce one leaf value as graphql-core would, or SLOW where it would raise or null out."""
    coerce = leaf.coerce_output_value
    same = _UNCHANGED.get(leaf)
    # strawberry's enum type finds a member's name by scanning its values on every call; look it up.
    wrapped = getattr(leaf, "wrapped_cls", None)
    names = {m: n for m in wrapped for n, d in leaf.values.items() if m.value == d.value} if wrapped else {}
    number, low, high = _NUMBERS.get(leaf, (SLOW, 0, 0))

    def value(v: Any) -> Any:
        if v is None:
            return None if nullable else SLOW
        if type(v) is same:
            return v
        if type(v) is wrapped:
            return names.get(v, SLOW)
        if type(v) is number and low < v < high:  # what graphql-core returns as it is (not NaN, not infinite)
            return v
        try:
            out = coerce(v)
        except Exception:  # noqa: BLE001 - the standard path reports it
            return SLOW
        return SLOW if out is None or out is Undefined else out

    return value


def replace_resolver(field_def: GraphQLField, resolve: Callable[..., Any]) -> None:
    """Give a built field another resolver (a role's mask, say), which the plan must then call."""
    field_def.resolve = resolve
    field_def.extensions = {**(field_def.extensions or {}), REPLACED: True}


def basic_attribute(field_def: GraphQLField) -> Callable[[Any], Any] | None:
    """How a strawberry "basic" field (no resolver, no extensions: strawberry's own test for reading
    the attribute without an info) reads its source; None for any other field, and for one whose
    resolver was replaced after strawberry built it (`replace_resolver`)."""
    extensions = field_def.extensions or {}
    field = extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(field, StrawberryField) or not field.is_basic_field or field_def.args \
            or extensions.get(REPLACED):
        return None
    attr, resolver = field.python_name, field.default_resolver
    if resolver is getattr:
        return attrgetter(attr)  # no Python frame per read
    return lambda source: resolver(source, attr)


def leaf_reader(field_def: GraphQLField) -> Reader | None:
    """A one-step reader for a basic field of a leaf (or list-of-leaf) type: its value, or SLOW for
    anything the standard path must report (a null in a non-null field, a value that does not coerce,
    an attribute that raises). Reading a record's attribute has no side effect, so it may be read again."""
    get = basic_attribute(field_def)
    if get is None:
        return None
    kind = field_def.type
    nullable = not isinstance(kind, GraphQLNonNull)
    kind = kind if nullable else kind.of_type
    if not isinstance(kind, GraphQLList):
        if not is_leaf_type(kind):
            return None
        one = _coercer(kind, nullable)
        same = _UNCHANGED.get(kind, SLOW)  # SLOW: no Python type is it

        def read(source: Any) -> Any:  # inlined, not shared with read_list: it runs for every leaf of every view
            try:
                v = get(source)
            except Exception:  # noqa: BLE001
                return SLOW
            return v if type(v) is same else one(v)  # a string of a String field: no call to coerce it

        return read
    item = kind.of_type
    item_nullable = not isinstance(item, GraphQLNonNull)
    item = item if item_nullable else item.of_type
    if not is_leaf_type(item):
        return None
    each = _coercer(item, item_nullable)

    def read_list(source: Any) -> Any:
        try:
            v = get(source)
        except Exception:  # noqa: BLE001
            return SLOW
        if v is None:
            return None if nullable else SLOW
        if type(v) is not list and type(v) is not tuple:
            return SLOW
        out = [each(i) for i in v]
        return SLOW if SLOW in out else out

    return read_list


def _has_variable(value: Any) -> bool:
    """Whether an argument's literal refers to a variable anywhere inside."""
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(_has_variable(v) for v in value.values)
    if isinstance(value, ObjectValueNode):
        return any(_has_variable(f.value) for f in value.fields)
    return False


class FieldPlan:
    """One response key of one object type: its definition, its merged nodes, how to resolve it."""

    __slots__ = ("args", "definition", "key", "nodes", "read", "resolve", "return_type", "rows",
                 "subs", "typename", "variant")

    def __init__(self, variant: Variant, key: str, nodes: list[FieldNode], definition: GraphQLField,
                 default_resolver: Any) -> None:
        self.variant = variant
        self.key = key
        self.nodes = nodes
        self.definition = definition
        self.return_type: GraphQLOutputType = definition.type
        self.typename = nodes[0].name.value == "__typename"
        self.read = leaf_reader(definition)
        self.args = self._static_args()
        self.resolve = direct_resolver(variant.plan.schema, definition, self.args) or definition.resolve \
            or default_resolver
        self.subs: dict[GraphQLObjectType, list[FieldPlan]] = {}
        self.rows: dict[GraphQLObjectType, Any] = {}  # by item type: a leaf-only list's readers (server/plan_run.py)

    def _static_args(self) -> dict[str, Any] | None:
        """The coerced arguments when they cannot depend on the variables; None: per request."""
        node = self.nodes[0]
        if not self.definition.args and not node.arguments:
            return {}
        if any(_has_variable(a.value) for a in node.arguments or ()):
            return None
        try:
            return get_argument_values(self.definition, node)
        except Exception:  # noqa: BLE001 - coerced per request, where the error is reported in place
            return None

    def arguments(self, variable_values: Any, hide_suggestions: bool) -> dict[str, Any]:
        """The coerced arguments (the call's `**` gives each resolver call a dict of its own; strawberry
        converts lists and input objects into new values for each call too)."""
        if self.args is not None:
            return self.args
        return get_argument_values(self.definition, self.nodes[0], variable_values, None, hide_suggestions)

    def sub(self, object_type: GraphQLObjectType) -> list[FieldPlan]:
        """The fields selected below this one on a value of `object_type`."""
        fields = self.subs.get(object_type)
        if fields is None:
            sets = [n.selection_set for n in self.nodes if n.selection_set is not None]
            fields = self.subs[object_type] = self.variant.collect(object_type, sets)
        return fields

    def plan_below(self, schema: GraphQLSchema) -> None:
        """Every selection below, for each type a value here can have: a planner's fault shows at
        planning (and graphql-core runs the request) rather than as a field error."""
        named = get_named_type(self.return_type)
        if isinstance(named, GraphQLObjectType):
            kinds: Any = (named,)
        elif is_abstract_type(named):
            kinds = schema.get_possible_types(named)  # type: ignore[arg-type]
        else:
            return
        for kind in kinds:
            for field in self.sub(kind):
                field.plan_below(schema)


class Variant:
    """The plan for one outcome of the operation's @skip/@include conditions."""

    def __init__(self, plan: Plan, excluded: frozenset[int]) -> None:
        self.plan = plan
        self.excluded = excluded  # ids of the nodes whose conditions leave them out
        self.root = self.collect(plan.root_type, [plan.operation.selection_set])
        for field in self.root:
            field.plan_below(plan.schema)

    def collect(self, object_type: GraphQLObjectType, sets: list[SelectionSetNode]) -> list[FieldPlan]:
        """CollectFields of the spec: response keys in document order, each with its merged nodes."""
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in sets:
            self._visit(object_type, selection_set, grouped, visited)
        schema = self.plan.schema
        out = []
        for key, nodes in grouped.items():
            definition = schema.get_field(object_type, nodes[0].name.value)
            if definition is not None:  # validation leaves none unknown; graphql-core skips them too
                out.append(FieldPlan(self, key, nodes, definition, self.plan.default_resolver))
        return out

    def _visit(self, object_type: GraphQLObjectType, selection_set: SelectionSetNode,
               grouped: dict[str, list[FieldNode]], visited: set[str]) -> None:
        excluded = self.excluded
        for selection in selection_set.selections:
            if id(selection) in excluded:
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self.plan.matches(selection.type_condition, object_type):
                    self._visit(object_type, selection.selection_set, grouped, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.plan.fragments.get(name)
                if fragment is None or not self.plan.matches(fragment.type_condition, object_type) \
                        or name in visited:
                    continue
                visited.add(name)
                self._visit(object_type, fragment.selection_set, grouped, visited)


class Plan:
    """An operation's plan: its variants by the outcome of its conditions."""

    def __init__(self, schema: GraphQLSchema, operation: OperationDefinitionNode,
                 fragments: dict[str, FragmentDefinitionNode], root_type: GraphQLObjectType,
                 default_resolver: Any) -> None:
        self.schema = schema
        self.operation = operation
        self.fragments = fragments
        self.root_type = root_type
        self.default_resolver = default_resolver
        self.conditional = [n for n in _selections(operation.selection_set, fragments) if n.directives]
        self.variants: dict[tuple[bool, ...], Variant] = {}

    def matches(self, condition: Any, object_type: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        kind = type_from_ast(self.schema, condition)
        if kind is object_type:
            return True
        return is_abstract_type(kind) and self.schema.is_sub_type(kind, object_type)  # type: ignore[arg-type]

    def root(self, variable_values: Any) -> list[FieldPlan]:
        """The root fields for this request's variables."""
        outcome = tuple(_included(n, variable_values) for n in self.conditional)
        variant = self.variants.get(outcome)
        if variant is None:
            excluded = frozenset(id(n) for n, ok in zip(self.conditional, outcome, strict=True) if not ok)
            variant = Variant(self, excluded)
            if len(self.variants) < VARIANTS_MAX:
                self.variants[outcome] = variant
        return variant.root


def _included(node: Any, variable_values: Any) -> bool:
    """@skip and @include as graphql-core reads them (skip first)."""
    skip = get_directive_values(GraphQLSkipDirective, node, variable_values)
    if skip and skip["if"]:
        return False
    include = get_directive_values(GraphQLIncludeDirective, node, variable_values)
    return not (include and not include["if"])


def _selections(selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode],
                seen: set[str] | None = None) -> list[Any]:
    """Every selection of the operation, through its fragments (each fragment once)."""
    seen = set() if seen is None else seen
    out: list[Any] = []
    for selection in selection_set.selections if selection_set is not None else ():
        out.append(selection)
        if isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                seen.add(name)
                out.extend(_selections(fragment.selection_set, fragments, seen))
        else:
            out.extend(_selections(selection.selection_set, fragments, seen))
    return out


def plannable(operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]) -> bool:
    """Whether the plan runs this operation (else graphql-core's executor does)."""
    if operation.operation is not OperationType.QUERY or operation.directives:
        return False
    if any(f.variable_definitions or f.directives for f in fragments.values()):
        return False
    for node in _selections(operation.selection_set, fragments):
        if any(d.name.value not in CONDITIONS for d in node.directives or ()):
            return False
        if isinstance(node, FragmentSpreadNode) and node.arguments:
            return False  # fragment arguments (experimental)
    return True


_plans: OrderedDict[tuple[int, int], tuple[GraphQLSchema, OperationDefinitionNode, Plan | None]] = OrderedDict()


def plan_for(schema: GraphQLSchema, operation: OperationDefinitionNode,
             fragments: dict[str, FragmentDefinitionNode], default_resolver: Any) -> Plan | None:
    """The operation's plan (None: graphql-core runs it), built at its first use. The cached document
    (server/query_cache.py) is the same object on every request, so its operation's identity is the
    key; the entry keeps both alive, so neither id is reused while listed."""
    key = (id(schema), id(operation))
    entry = _plans.get(key)
    if entry is not None and entry[0] is schema and entry[1] is operation:
        _plans.move_to_end(key)
        return entry[2]
    root_type = schema.get_root_type(operation.operation)
    plan = Plan(schema, operation, fragments, root_type, default_resolver) \
        if root_type is not None and plannable(operation, fragments) else None
    _plans[key] = (schema, operation, plan)
    if len(_plans) > MAXSIZE:
        _plans.popitem(last=False)
    return plan
