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
"""

from __future__ import annotations

from typing import Any, NamedTuple

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
)
from graphql.execution.collect_fields import GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

__all__ = ["LeafFastExecutionContext", "leaf_fields"]

# What a leaf field's value usually is: never awaitable, no need to ask.
_PLAIN = frozenset({str, int, float, bool})


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

    def _coerce(self, leaf: _Leaf, value: Any, *, nullable: bool) -> Any:
        if value is None:
            return None if nullable else Undefined
        if type(value) not in _PLAIN and (isinstance(value, Exception) or self.is_awaitable(value)):
            return Undefined
        completed = leaf.type.coerce_output_value(value)
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
