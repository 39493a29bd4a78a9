"""The schema: types, resolvers and the extensions that guard them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cache, cached_property, partial
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLScalarType
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from wfa_keys.graphql.execution import DirectExecutionContext, direct_fields
from wfa_keys.graphql.extensions import (
    CachedParsing,
    CachedValidation,
    ErrorPolicy,
    is_unexpected,
    request_id_for,
)
from wfa_keys.graphql.limits import IntrospectionForAdmins, TokenLimit, limit_rules
from wfa_keys.graphql.mutations import Mutation
from wfa_keys.graphql.queries import Query
from wfa_keys.settings import Settings

logger = logging.getLogger("wfa_keys.graphql")

_SCALARS_WITHOUT_FLOATS = frozenset({"String", "ID", "Boolean", "Int", "DateTime"})


class Schema(strawberry.Schema):
    """A Strawberry schema that logs only unexpected errors, once each, with the request ID.

    Strawberry logs every error with a traceback; a permission refusal or a bad argument is
    an answer, not an incident, and is not logged.

    Queries run in :class:`DirectExecutionContext`, which completes the plain fields listed
    by :attr:`direct_fields` without graphql-core's per-field machinery.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("execution_context_class", DirectExecutionContext)
        super().__init__(*args, **kwargs)

    @cached_property
    def direct_fields(self) -> dict[str, Any]:
        """The fields completed directly, by type and field name (see :func:`direct_fields`)."""
        return direct_fields(self._schema)

    @cached_property
    def data_without_floats(self) -> bool:
        """True when no answer's ``data`` can hold a float: every scalar of the schema
        completes to a string, an integer or a boolean (no ``Float``, no custom scalar but
        ``DateTime``, which is written as ISO text)."""
        scalars = {
            name
            for name, graphql_type in self._schema.type_map.items()
            if isinstance(graphql_type, GraphQLScalarType)
        }
        return scalars <= _SCALARS_WITHOUT_FLOATS

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not is_unexpected(error):
                continue
            request_id = request_id_for(execution_context) if execution_context else "-"
            cause = error.original_error or error
            logger.error(
                "unexpected %s in GraphQL path %s (request %s)",
                type(cause).__name__,
                ".".join(str(part) for part in error.path or ()) or "-",
                request_id,
                exc_info=(type(cause), cause, cause.__traceback__),
                extra={"request_id": request_id},
            )


ExtensionFactory = type[SchemaExtension] | Callable[[], SchemaExtension]


def schema_extensions(settings: Settings) -> list[ExtensionFactory]:
    """The extensions, as classes or factories so that no state is shared between requests.

    ErrorPolicy comes first so that its exit runs last and sees every other error. The
    limits run at parsing and validation, so a refused query reaches no resolver. Parsing and
    validation are cached: a query the admin console sends again costs neither.
    """
    extensions: list[ExtensionFactory] = [
        partial(ErrorPolicy, hide_suggestions=settings.production),
        partial(TokenLimit, max_token_count=settings.max_tokens),
        limit_rules(max_depth=settings.max_query_depth, max_alias_count=settings.max_aliases),
    ]
    if settings.production:
        extensions.append(IntrospectionForAdmins)
    # Last: they read the parse options and the rules the extensions above have set.
    extensions += [CachedParsing, CachedValidation]
    return extensions


def build_schema(settings: Settings, extra_extensions: Sequence[ExtensionFactory] = ()) -> Schema:
    """The GraphQL schema configured by ``settings``, plus the caller's extensions (metrics)."""
    extensions = [*schema_extensions(settings), *extra_extensions]
    return Schema(query=Query, mutation=Mutation, extensions=extensions)


@cache
def export_schema_sdl() -> str:
    """The schema in SDL; ``schema.graphql`` at the top of the repository must equal it."""
    return build_schema(Settings()).as_str() + "\n"
