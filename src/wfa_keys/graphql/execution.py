"""Executing queries: Strawberry's execution context, with plain fields completed directly.

A page of 100 keys is about 2,000 fields, and most are read straight off an object
(``name``, ``createdAt``, ``owner { email }``) with no resolver, permission or argument.
graphql-core still runs its whole per-field machinery for each (a resolve-info object, the
resolver call, the awaitable checks, the nullability, leaf and object dispatch, a field
collection per object), which made the admin list several times slower than its data.

:class:`DirectExecutionContext` completes such *plain* fields itself:

- a plain leaf (a scalar or an enum, or a list of them) is read with ``getattr`` and coerced
  with the leaf type's own ``coerce_output_value``, which is what that machinery ends with;
- a plain object field (an object type, or a list of one, read with ``getattr``) is completed
  with a *plan*: the fields graphql-core itself collects for that selection (fragments,
  aliases, ``@skip``/``@include`` with this request's variables, merged selections), made
  once per selection and request, and run on every object of the list. A plan is made only
  when every field below is plain too (or ``__typename``); one field with a resolver, an
  argument, a permission or a deferred or streamed part, and that object is left to
  graphql-core, which completes its plain fields this way again, one level down.

A list of objects that a resolver returns (a key's 720 hourly usage buckets) is completed by
a plan too, when its items' selection is all plain.

Anything unusual met while completing (an exception, an awaitable, a null in a non-null
field, a value of another type, a failed coercion) drops the whole field to graphql-core,
which completes it again from the start: reading is free of side effects, so the answer and
its errors (messages, paths, order) are graphql-core's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from enum import EnumMeta
from typing import Any, NamedTuple

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetails, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

__all__ = ["DirectExecutionContext", "LeafFastExecutionContext", "direct_fields", "leaf_fields"]

# What a leaf field's value usually is: never awaitable, no need to ask (instances of these
# very classes have no attributes of their own).
_PLAIN = frozenset({str, int, float, bool, datetime, date})
# The built-in scalars whose output coercion returns a value of these types as it is.
_AS_IS: dict[Any, frozenset[type]] = {
    GraphQLString: frozenset({str}),
    GraphQLID: frozenset({str}),
    GraphQLBoolean: frozenset({bool}),
}
_TYPENAME = "__typename"


class _Leaf(NamedTuple):
    python_name: str
    graphql_type: GraphQLScalarType | GraphQLEnumType
    nullable: bool
    #: A list of leaves (``[String!]!``), whose items may be null when ``item_nullable``.
    is_list: bool = False
    item_nullable: bool = True
    #: Value types the coercion returns unchanged (a ``str`` for ``String``).
    as_is: frozenset[type] = frozenset()
    #: An enum made by Strawberry from a Python enum: its members' GraphQL names.
    enum_class: type | None = None
    enum_names: dict[Any, str] | None = None


class _Object(NamedTuple):
    python_name: str
    graphql_type: GraphQLObjectType
    nullable: bool
    is_list: bool
    item_nullable: bool
    #: The class of the values completed directly (the Strawberry type): anything else,
    #: graphql-core completes.
    origin: type


FieldSpec = _Leaf | _Object
FieldTable = dict[str, dict[str, FieldSpec]]

# A plan step: (response name, python name or for __typename the type's name, kind, the leaf
# or the object, the object's plan).
_LEAF, _OBJECT, _TYPE_NAME = 0, 1, 2
_Step = tuple[str, str, int, FieldSpec | None, "_Plan | None"]
_Plan = tuple[_Step, ...]
#: Objects completed in this request, by plan and object (kept alive with their answer, so
#: their id is not reused meanwhile): an owner shared by a hundred keys is completed once.
_Memo = dict[tuple[int, int], tuple[Any, Any]]


def _unwrap(graphql_type: Any) -> tuple[Any, bool]:
    """The type inside a non-null wrapper, and whether it was nullable."""
    if isinstance(graphql_type, GraphQLNonNull):
        return graphql_type.of_type, False
    return graphql_type, True


def _default_getattr(schema: GraphQLSchema) -> bool:
    strawberry_schema = schema.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    config = getattr(strawberry_schema, "config", None)
    return config is not None and config.default_resolver is getattr


def _plain_fields(schema: GraphQLSchema) -> Any:
    """(object type, field name, python name, field type) of each field read by getattr."""
    if not _default_getattr(schema):
        return
    for graphql_type in schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        for name, field in graphql_type.fields.items():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            resolve = field.resolve
            if (
                isinstance(definition, StrawberryField)
                and definition.is_basic_field
                and resolve is not None
                and getattr(resolve, "_is_default", False)
                # Strawberry's resolver of a basic field without exception handlers (with
                # handlers it is another function, also marked _is_default).
                and getattr(resolve, "__name__", None) == "_get_basic_result"
                and not field.args
                and definition.python_name is not None
            ):
                yield graphql_type, name, definition.python_name, *_shape(field.type)


def _shape(field_type: Any) -> tuple[Any, bool, bool, bool]:
    """The named type of a field's type, whether it is nullable, a list, and whether the
    list's items are nullable."""
    field_type, nullable = _unwrap(field_type)
    is_list, item_nullable = False, True
    if isinstance(field_type, GraphQLList):
        is_list = True
        field_type, item_nullable = _unwrap(field_type.of_type)
    return field_type, nullable, is_list, item_nullable


def leaf_fields(schema: GraphQLSchema) -> FieldTable:
    """The leaves that can be read directly, by object type name and field name.

    A field qualifies when it is a basic Strawberry field (no resolver, no permission or
    field extension, no exception handler: Strawberry's own default resolver), takes no
    argument and returns a scalar or an enum or a list of them, and the schema reads
    attributes with ``getattr`` (Strawberry's default).
    """
    table: FieldTable = {}
    for graphql_type, name, python_name, *shape in _plain_fields(schema):
        field_type, nullable, is_list, item_nullable = shape
        if isinstance(field_type, GraphQLScalarType | GraphQLEnumType):
            as_is = _AS_IS.get(field_type, frozenset())
            enum_class, enum_names = _enum_names(field_type)
            leaf = _Leaf(
                python_name,
                field_type,
                nullable,
                is_list,
                item_nullable,
                as_is,
                enum_class,
                enum_names,
            )
            table.setdefault(graphql_type.name, {})[name] = leaf
    return table


def _enum_names(leaf_type: Any) -> tuple[type | None, dict[Any, str] | None]:
    """The Python enum of a Strawberry enum and the GraphQL name of each member, found as
    Strawberry's ``coerce_output_value`` finds it (the first name of an equal value)."""
    enum_class = getattr(leaf_type, "wrapped_cls", None)
    if not isinstance(leaf_type, CustomGraphQLEnumType) or not isinstance(enum_class, EnumMeta):
        return None, None
    names: dict[Any, str] = {}
    member: Any
    for member in enum_class:
        for name, value in leaf_type.values.items():
            if member.value == value.value:
                names[member] = name
                break
    return enum_class, names


def direct_fields(schema: GraphQLSchema) -> FieldTable:
    """The fields completed directly: the :func:`leaf_fields`, and the object fields.

    An object field qualifies on the same terms as a leaf, when it returns an object type
    (or a list of one) made by Strawberry from a class, with no ``is_type_of`` check (no
    interface): a value of that very class is then completed field by field.
    """
    table = leaf_fields(schema)
    for graphql_type, name, python_name, *shape in _plain_fields(schema):
        field_type, nullable, is_list, item_nullable = shape
        found = _list_spec(field_type)
        if found is None:
            continue
        spec = _Object(python_name, field_type, nullable, is_list, item_nullable, found.origin)
        table.setdefault(graphql_type.name, {})[name] = spec
    return table


def _list_spec(object_type: Any) -> _Object | None:
    """How to complete a list of ``object_type`` directly; None when it cannot be (not an
    object type made by Strawberry from a class, or one with an ``is_type_of`` check)."""
    if not isinstance(object_type, GraphQLObjectType) or object_type.is_type_of is not None:
        return None
    definition = object_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryObjectDefinition):
        return None
    origin = definition.origin
    if issubclass(origin, BaseException) or hasattr(origin, "__await__"):
        return None
    return _Object("", object_type, True, True, True, origin)


class DirectExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context; plain fields are completed without the per-field
    machinery (see the module's description). Everything else is graphql-core's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built once per schema: the schema keeps it (see Schema.direct_fields).
        strawberry_schema = self.schema.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        # An extension with a resolve hook (a graphql-core middleware) sees every field.
        middleware = self.middleware_manager
        hooked = middleware is not None and bool(middleware.middlewares)
        self._direct: FieldTable = (
            {} if hooked else getattr(strawberry_schema, "direct_fields", None) or {}
        )
        # Plans of this request, by object type and selection (graphql-core's own memo key;
        # the selection is kept alive with its plan, so its id is not reused meanwhile).
        self._plans: dict[tuple[str, int], tuple[Sequence[FieldDetails], _Plan | None]] = {}
        self._memo: _Memo = {}
        self._list_specs: dict[tuple[str, bool], _Object] = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        direct = self._direct.get(parent_type.name)
        if direct is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        done: dict[str, Any] = {}
        rest: GroupedFieldSet = {}
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            spec = direct.get(node.name.value)
            if spec is not None and not node.arguments:
                try:
                    if isinstance(spec, _Leaf):
                        completed = _leaf_value(spec, getattr(source_value, spec.python_name))
                    else:
                        completed = self._object_field(spec, field_details_list, source_value)
                except Exception:  # graphql-core runs it again and reports the error its way
                    completed = Undefined
                if completed is not Undefined:
                    done[response_name] = completed
                    continue
            rest[response_name] = field_details_list
        if not rest:
            return done
        others = super().execute_fields(parent_type, source_value, path, rest, position_context)
        if self.is_awaitable(others):

            async def merged() -> dict[str, Any]:
                return _in_order(grouped_field_set, done, await others)

            return merged()
        return _in_order(grouped_field_set, done, others)  # type: ignore[arg-type]  # not awaitable

    def complete_list_value(
        self,
        return_type: GraphQLList[Any],
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        # A list a resolver returns (a key's 720 usage buckets): completed by a plan like a
        # plain list field when its items are objects whose selection is all plain.
        completed = self._resolved_list(return_type.of_type, field_details_list, result)
        if completed is not Undefined:
            return completed  # type: ignore[no-any-return]  # a list
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _resolved_list(self, item_type: Any, field_details_list: Any, items: Any) -> Any:
        """The completed list, or Undefined when graphql-core must complete it."""
        object_type, item_nullable = _unwrap(item_type)
        if (
            not self._direct
            or not isinstance(object_type, GraphQLObjectType)
            or (type(items) is not list and type(items) is not tuple)
        ):
            return Undefined
        key = (object_type.name, item_nullable)
        spec = self._list_specs.get(key)
        if spec is None:
            found = _list_spec(object_type)
            if found is None:
                return Undefined
            spec = self._list_specs[key] = found._replace(item_nullable=item_nullable)
        plan = self._plan(object_type, field_details_list)
        if plan is None:
            return Undefined
        try:
            return _object_value(spec, plan, items, self._memo)
        except Exception:  # graphql-core reads it again and reports the error its way
            return Undefined

    def _object_field(
        self, spec: _Object, field_details_list: Sequence[FieldDetails], source: Any
    ) -> Any:
        """The completed object field, or Undefined when graphql-core must complete it."""
        plan = self._plan(spec.graphql_type, field_details_list)
        if plan is None:
            return Undefined
        value = getattr(source, spec.python_name)
        if value is None:
            return None if spec.nullable else Undefined
        return _object_value(spec, plan, value, self._memo)

    def _plan(
        self, object_type: GraphQLObjectType, field_details_list: Sequence[FieldDetails]
    ) -> _Plan | None:
        """How to complete ``object_type`` for this selection; None when not all plain."""
        key = (object_type.name, id(field_details_list))
        known = self._plans.get(key)
        if known is not None:
            return known[1]
        plan = self._make_plan(object_type, field_details_list)
        self._plans[key] = (field_details_list, plan)
        return plan

    def _make_plan(
        self, object_type: GraphQLObjectType, field_details_list: Sequence[FieldDetails]
    ) -> _Plan | None:
        if any(_deferred_or_streamed(details) for details in field_details_list):
            return None
        grouped, new_defer_usages, _ = self.collect_subfields(
            object_type,
            field_details_list,  # type: ignore[arg-type]  # graphql-core's own list
        )
        if new_defer_usages:
            return None
        direct = self._direct.get(object_type.name, {})
        steps: list[_Step] = []
        for response_name, sub_details in grouped.items():
            if any(_deferred_or_streamed(details) for details in sub_details):
                return None
            node = sub_details[0].node
            name = node.name.value
            if node.arguments:
                return None
            if name == _TYPENAME:
                steps.append((response_name, object_type.name, _TYPE_NAME, None, None))
                continue
            spec = direct.get(name)
            if spec is None:
                return None
            if isinstance(spec, _Leaf):
                steps.append((response_name, spec.python_name, _LEAF, spec, None))
                continue
            sub_plan = self._plan(spec.graphql_type, sub_details)
            if sub_plan is None:
                return None
            steps.append((response_name, spec.python_name, _OBJECT, spec, sub_plan))
        return tuple(steps)


def _deferred_or_streamed(details: FieldDetails) -> bool:
    """True for a field in a deferred fragment, or with any directive left on it (``@stream``;
    ``@skip`` and ``@include`` have already been applied by the field collection)."""
    node = details.node
    return details.defer_usage is not None or any(
        directive.name.value not in {"skip", "include"} for directive in node.directives or ()
    )


def _run(plan: _Plan, origin: type, source: Any, memo: _Memo) -> Any:
    """``source`` completed by ``plan``, or Undefined when graphql-core must do it."""
    if type(source) is not origin:
        return Undefined
    completed: dict[str, Any] = {}
    for response_name, python_name, kind, spec, sub_plan in plan:
        if kind == _TYPE_NAME:
            completed[response_name] = python_name
            continue
        value = getattr(source, python_name)
        if value is None:
            if not spec.nullable:  # type: ignore[union-attr]  # a leaf or an object
                return Undefined
            completed[response_name] = None
            continue
        if kind == _LEAF:
            if type(value) in spec.as_is:  # type: ignore[union-attr]  # a leaf
                completed[response_name] = value
                continue
            if (
                type(value) is int
                and spec.graphql_type is GraphQLInt  # type: ignore[union-attr]  # a leaf
                and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT
            ):  # what Int's coercion returns for it (a usage bucket is mostly counts)
                completed[response_name] = value
                continue
            value = _leaf_value(spec, value)  # type: ignore[arg-type]  # a leaf
        else:
            value = _object_value(spec, sub_plan, value, memo)  # type: ignore[arg-type]
        if value is Undefined:
            return Undefined
        completed[response_name] = value
    return completed


def _object_value(spec: _Object, plan: _Plan, value: Any, memo: _Memo) -> Any:
    """The completed object (or list of objects) ``value``, or Undefined."""
    if spec.is_list:
        return _each(value, spec.item_nullable, lambda item: _run(plan, spec.origin, item, memo))
    key = (id(plan), id(value))
    known = memo.get(key)
    if known is not None and known[0] is value:
        return known[1]
    completed = _run(plan, spec.origin, value, memo)
    memo[key] = (value, completed)
    return completed


def _leaf_value(leaf: _Leaf, value: Any) -> Any:
    """The completed leaf, or Undefined when graphql-core must do it (and say why)."""
    if value is None:
        return None if leaf.nullable else Undefined
    if leaf.is_list:
        return _each(value, leaf.item_nullable, lambda item: _leaf_item(leaf, item))
    return _leaf_item(leaf, value)


def _leaf_item(leaf: _Leaf, value: Any) -> Any:
    return value if type(value) in leaf.as_is else _coerce(leaf, value)


def _each(value: Any, item_nullable: bool, complete: Callable[[Any], Any]) -> Any:
    """A list (or tuple) completed item by item, or Undefined (graphql-core takes any
    iterable, and says what is wrong with the rest)."""
    if type(value) is not list and type(value) is not tuple:
        return Undefined
    items: list[Any] = []
    for item in value:
        if item is None:
            if not item_nullable:
                return Undefined
            items.append(None)
            continue
        completed = complete(item)
        if completed is Undefined:
            return Undefined
        items.append(completed)
    return items


def _coerce(leaf: _Leaf, value: Any) -> Any:
    if type(value) is leaf.enum_class:
        name = leaf.enum_names.get(value)  # type: ignore[union-attr]  # set with the class
        if name is not None:
            return name
    if type(value) not in _PLAIN and (
        isinstance(value, BaseException) or optimized_is_awaitable(value)
    ):
        return Undefined
    completed = leaf.graphql_type.coerce_output_value(value)
    return Undefined if completed is None else completed


def _in_order(
    grouped_field_set: GroupedFieldSet, done: dict[str, Any], others: dict[str, Any]
) -> dict[str, Any]:
    """The two results as one, in the order of the query (the response's key order)."""
    return {
        name: done[name] if name in done else others[name]
        for name in grouped_field_set
        if name in done or name in others
    }


#: The name this context had while it completed leaves only.
LeafFastExecutionContext = DirectExecutionContext
