"""Executing queries: Strawberry's execution context, with plain leaf fields read directly.

A page of 100 keys is about 2,000 fields, and most are leaves read straight off an object
(``name``, ``createdAt``) with no resolver, permission or argument. graphql-core still runs
its whole per-field machinery for each (a resolve-info object, the resolver call, the
awaitable checks, the nullability and leaf dispatch), which made the admin list several
times slower than its data. :class:`LeafFastExecutionContext` reads such a field with
``getattr`` and coerces it with the leaf type's own ``coerce_output_value``, which is what
that machinery ends with; anything else, and any value it cannot complete that way (an
error, an awaitable, a null in a non-null field), goes through graphql-core unchanged, so
answers and errors are the same.

A list of objects that a resolver returns (a key's 720 hourly usage buckets) is completed
the same way when every field selected on its items is such a leaf (or ``__typename``):
one loop over the items, with the selection collected once, instead of graphql-core's
per-item completion; the first item it cannot complete so hands the whole list back.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    GraphQLEnumType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetails, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

__all__ = ["LeafFastExecutionContext", "leaf_fields"]

# What a leaf field's value usually is: never awaitable, no need to ask.
_PLAIN = frozenset({str, int, float, bool})
_TYPENAME = "__typename"
# One field of a row plan: its response name, its leaf (None: ``__typename``), and whether
# the leaf is a single non-null Int.
_RowPlan = tuple[tuple[str, "_Leaf | None", bool], ...]


class _Leaf(NamedTuple):
    python_name: str
    type: GraphQLScalarType | GraphQLEnumType
    nullable: bool
    #: A list of leaves (``[String!]!``), whose items may be null when ``item_nullable``.
    is_list: bool = False
    item_nullable: bool = True


def _unwrap(graphql_type: Any) -> tuple[Any, bool]:
    """The type inside a non-null wrapper, and whether it was nullable."""
    if isinstance(graphql_type, GraphQLNonNull):
        return graphql_type.of_type, False
    return graphql_type, True


def leaf_fields(schema: GraphQLSchema) -> dict[str, dict[str, _Leaf]]:
    """The fields that can be read directly, by object type name and field name.

    A field qualifies when it is a basic Strawberry field (no resolver, no permission or
    field extension, no exception handler: Strawberry's own default resolver), takes no
    argument and returns a scalar or an enum or a list of them, and the schema reads
    attributes with ``getattr`` (Strawberry's default).
    """
    strawberry_schema = schema.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    config = getattr(strawberry_schema, "config", None)
    if config is None or config.default_resolver is not getattr:
        return {}
    table: dict[str, dict[str, _Leaf]] = {}
    for graphql_type in schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        leaves = {}
        for name, field in graphql_type.fields.items():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            resolve = field.resolve
            if (
                not isinstance(definition, StrawberryField)
                or not definition.is_basic_field
                or resolve is None
                or not getattr(resolve, "_is_default", False)
                or field.args
                or definition.python_name is None
            ):
                continue
            field_type, nullable = _unwrap(field.type)
            is_list, item_nullable = False, True
            if isinstance(field_type, GraphQLList):
                is_list = True
                field_type, item_nullable = _unwrap(field_type.of_type)
            if isinstance(field_type, GraphQLScalarType | GraphQLEnumType):
                leaves[name] = _Leaf(
                    definition.python_name, field_type, nullable, is_list, item_nullable
                )
        if leaves:
            table[graphql_type.name] = leaves
    return table


class LeafFastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context; plain leaf fields are read without the per-field
    machinery (see the module's description). Everything else is graphql-core's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built once per schema: the schema keeps it (see Schema.leaf_fields).
        strawberry_schema = self.schema.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        # An extension with a resolve hook (a graphql-core middleware) sees every field.
        middleware = self.middleware_manager
        hooked = middleware is not None and bool(middleware.middlewares)
        self._leaves: dict[str, dict[str, _Leaf]] = (
            {} if hooked else getattr(strawberry_schema, "leaf_fields", None) or {}
        )
        # Row plans of this request, by object type and selection (graphql-core's own memo
        # key; the selection is kept alive with its plan, so its id is not reused meanwhile).
        self._row_plans: dict[tuple[str, int], tuple[Any, _RowPlan | None]] = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        leaves = self._leaves.get(parent_type.name)
        if leaves is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        done: dict[str, Any] = {}
        rest: GroupedFieldSet = {}
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            leaf = leaves.get(node.name.value)
            if leaf is not None and not node.arguments:
                completed = self._complete_leaf(leaf, source_value)
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

    def _complete_leaf(self, leaf: _Leaf, source: Any) -> Any:
        """The completed value, or Undefined when graphql-core must do it (and say why)."""
        try:
            value = getattr(source, leaf.python_name)
            if value is None:
                return None if leaf.nullable else Undefined
            if not leaf.is_list:
                return self._coerce(leaf, value, nullable=leaf.nullable)
            if type(value) is not list and type(value) is not tuple:
                return Undefined
            items = [self._coerce(leaf, item, nullable=leaf.item_nullable) for item in value]
        except Exception:  # graphql-core runs it again and reports the error its way
            return Undefined
        return Undefined if Undefined in items else items

    def complete_list_value(
        self,
        return_type: GraphQLList[Any],
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        rows = self._leaf_rows(return_type.of_type, field_details_list, result)
        if rows is not Undefined:
            return rows  # type: ignore[no-any-return]  # a list
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _leaf_rows(self, item_type: Any, field_details_list: Any, items: Any) -> Any:
        """A list of objects whose selected fields are all plain leaves, completed in one
        loop; Undefined when graphql-core must complete it (and say why, if anything)."""
        if type(items) is not list and type(items) is not tuple:
            return Undefined
        object_type, item_nullable = _unwrap(item_type)
        if not isinstance(object_type, GraphQLObjectType) or object_type.is_type_of is not None:
            return Undefined
        definition = object_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberryObjectDefinition):
            return Undefined
        plan = self._row_plan(object_type, field_details_list)
        if plan is None:
            return Undefined
        origin, typename, complete_leaf = definition.origin, object_type.name, self._complete_leaf
        rows: list[Any] = []
        try:
            for item in items:
                if item is None:
                    if not item_nullable:
                        return Undefined
                    rows.append(None)
                    continue
                if type(item) is not origin:  # an error, an awaitable, another class
                    return Undefined
                row: dict[str, Any] = {}
                for response_name, leaf, is_int in plan:
                    if leaf is None:
                        row[response_name] = typename
                        continue
                    if is_int:  # most of a usage bucket: read and checked inline
                        value = getattr(item, leaf.python_name)
                        if type(value) is int and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT:
                            row[response_name] = value
                            continue
                    value = complete_leaf(leaf, item)
                    if value is Undefined:
                        return Undefined
                    row[response_name] = value
                rows.append(row)
        except Exception:  # graphql-core reads it again and reports the error its way
            return Undefined
        return rows

    def _row_plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> Any:
        """The leaves selected on ``object_type``'s items, in the response's order; None
        when anything else is selected, or deferred or streamed."""
        key = (object_type.name, id(field_details_list))
        known = self._row_plans.get(key)
        if known is not None:
            return known[1]
        plan = self._make_row_plan(object_type, field_details_list)
        self._row_plans[key] = (field_details_list, plan)
        return plan

    def _make_row_plan(
        self, object_type: GraphQLObjectType, field_details_list: Any
    ) -> _RowPlan | None:
        leaves = self._leaves.get(object_type.name)
        if leaves is None or any(_directed(details) for details in field_details_list):
            return None
        grouped, new_defer_usages, forbidden = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages or forbidden:
            return None
        plan: list[tuple[str, _Leaf | None, bool]] = []
        for response_name, sub_details in grouped.items():
            node = sub_details[0].node
            if node.arguments or any(_directed(details) for details in sub_details):
                return None
            name = node.name.value
            leaf = leaves.get(name)
            if leaf is None and name != _TYPENAME:
                return None
            is_int = leaf is not None and leaf.type is GraphQLInt and not leaf.is_list
            plan.append((response_name, leaf, is_int))
        return tuple(plan)

    def _coerce(self, leaf: _Leaf, value: Any, *, nullable: bool) -> Any:
        if value is None:
            return None if nullable else Undefined
        if type(value) is int and leaf.type is GraphQLInt:
            # What Int's coercion returns for an int in range (anything else goes through it).
            return value if GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT else Undefined
        if type(value) not in _PLAIN and (isinstance(value, Exception) or self.is_awaitable(value)):
            return Undefined
        completed = leaf.type.coerce_output_value(value)
        return Undefined if completed is None else completed


def _directed(details: FieldDetails) -> bool:
    """True for a field in a deferred fragment or with a directive left on it (``@stream``;
    ``@skip`` and ``@include`` have been applied when the fields were collected)."""
    return details.defer_usage is not None or any(
        directive.name.value not in {"skip", "include"}
        for directive in details.node.directives or ()
    )


def _in_order(
    grouped_field_set: GroupedFieldSet, done: dict[str, Any], others: dict[str, Any]
) -> dict[str, Any]:
    """The two results as one, in the order of the query (the response's key order)."""
    return {
        name: done[name] if name in done else others[name]
        for name in grouped_field_set
        if name in done or name in others
    }
