"""Schema extensions: what a client may learn from an error.

:class:`ErrorPolicy` runs last on every operation. Expected errors (the codes of
:mod:`wfa_keys.graphql.errors`, and mistakes in the query document itself) keep their
message and get a code; anything else becomes ``INTERNAL_SERVER_ERROR`` with the request ID
and nothing more, so no exception text, SQL or file name reaches the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from uuid import uuid4

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from wfa_keys.db import is_unavailable
from wfa_keys.graphql.context import Context, request_id_of
from wfa_keys.graphql.errors import (
    INTERNAL_ERROR_CODE,
    INTERNAL_ERROR_MESSAGE,
    ServiceError,
    ServiceUnavailable,
)

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
#: ``Retry-After`` of a GraphQL request answered 503 (a shared component did not answer).
RETRY_AFTER_UNAVAILABLE = "5"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"

_REQUEST_ID_ATTRIBUTE = "_wfa_request_id"
# graphql-core ends a message with its guesses at what was meant ("Did you mean 'name'?").
_SUGGESTION = " Did you mean "


def request_id_for(execution_context: ExecutionContext) -> str:
    """The request's ID; one is made up (once per operation) when the context has none."""
    request_id = request_id_of(execution_context.context)
    if request_id is not None:
        return request_id
    request_id = getattr(execution_context, _REQUEST_ID_ATTRIBUTE, None)
    if request_id is None:
        request_id = uuid4().hex
        setattr(execution_context, _REQUEST_ID_ATTRIBUTE, request_id)
    return request_id


def is_unexpected(error: GraphQLError) -> bool:
    """True for errors the client must not see the detail of.

    Resolvers' expected errors are :class:`ServiceError`; errors raised by graphql-core
    about the document or the variables (no path, no foreign cause) are the client's own.
    """
    original = error.original_error
    if isinstance(original, ServiceError):
        return False
    about_the_document = original is None or isinstance(original, GraphQLError)
    return not (error.path is None and about_the_document)


def present(
    error: GraphQLError, request_id: str, *, hide_suggestions: bool = False
) -> GraphQLError:
    """The error as the client sees it; without "Did you mean ...?" if ``hide_suggestions``."""
    if is_unexpected(error):
        unavailable = error.original_error is not None and is_unavailable(error.original_error)
        if unavailable:
            # The database did not answer in time: nothing about the request was wrong. The
            # coded error as the original, so that presenting it again keeps it as it is.
            coded = ServiceUnavailable(request_id)
            return GraphQLError(
                coded.message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                original_error=coded,
                extensions=coded.extensions,
            )
        return GraphQLError(
            INTERNAL_ERROR_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": INTERNAL_ERROR_CODE, "requestId": request_id},
        )
    extensions = error.extensions or {}
    if "code" not in extensions:
        code = PARSE_FAILED if isinstance(error, GraphQLSyntaxError) else VALIDATION_FAILED
        error.extensions = {**extensions, "code": code}
    if hide_suggestions and _SUGGESTION in error.message:
        error.message = error.message.split(_SUGGESTION)[0].rstrip()
    return error


class ErrorPolicy(SchemaExtension):
    """Masks unexpected errors and gives every error an ``extensions.code``.

    With ``hide_suggestions`` (production mode), field and type suggestions are removed
    from messages for anyone but a signed-in admin: they would map the schema for a
    prober as well as introspection does.
    """

    def __init__(self, *, hide_suggestions: bool = False) -> None:
        self.hide_suggestions = hide_suggestions

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = request_id_for(self.execution_context)
        context = self.execution_context.context
        hide = self.hide_suggestions and not (isinstance(context, Context) and context.is_admin)
        result.errors = [
            present(error, request_id, hide_suggestions=hide) for error in result.errors
        ]
        response = context.response if isinstance(context, Context) else None
        if response is not None and any(
            (error.extensions or {}).get("code") == ServiceUnavailable.code
            for error in result.errors
        ):
            # A shared component did not answer: the whole request is to be retried.
            response.status_code = 503
            response.headers["Retry-After"] = RETRY_AFTER_UNAVAILABLE


class CachedParsing(ParserCache):
    """Strawberry's parser cache (one parse per distinct query text, LRU-bounded).

    A document that does not parse is left to Strawberry's own parser, which reports the
    error the usual way (as ``GRAPHQL_PARSE_FAILED``, or ``TOO_MANY_TOKENS``).
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query:
            with suppress(GraphQLError):
                context.graphql_document = self.cached_parse_document(
                    context.query, **context.parse_options
                )
        yield


class CachedValidation(ValidationCache):
    """Strawberry's validation cache, for valid documents only.

    The cache is keyed by the schema, the parsed document (the same object for the same text,
    thanks to :class:`CachedParsing`) and the rule classes (built once, see ``limits.py``).
    Errors are validated afresh each time: :func:`present` rewrites an error for its
    audience, and a cached error would carry one request's rewrite into the next.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        assert document is not None  # parsing succeeded, or validation would not run
        errors = self.cached_validate_document(
            context.schema._schema, document, context.validation_rules
        )
        if errors:
            errors = validate_document(context.schema._schema, document, context.validation_rules)
        context.pre_execution_errors = errors
        yield
