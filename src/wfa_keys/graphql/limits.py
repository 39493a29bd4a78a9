"""Limits on what one query may ask for, checked before any resolver runs.

Strawberry's own limiters do the counting; these subclasses only give their errors an
``extensions.code`` naming the limit, so that a client can tell a too-deep query from a
mistyped one. The validation rules are built once, when the schema is built, and every
request's extension reuses them: the validation cache is keyed by the rule classes, and new
classes per request would make every lookup miss. There are two rule sets in production
(with and without the introspection rule, for admins and everyone else), each stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from graphql import ASTValidationRule, GraphQLError, GraphQLSyntaxError, ValidationContext
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from wfa_keys.graphql.context import Context

QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"


def coded_rule(rule: type[ASTValidationRule], code: str) -> type[ASTValidationRule]:
    """``rule`` with ``code`` added to every error it reports."""

    class CodedRule(rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            report = context.report_error

            def report_with_code(error: GraphQLError) -> None:
                error.extensions = {**(error.extensions or {}), "code": code}
                report(error)

            # Strawberry's limiters report from __init__, through the context.
            context.report_error = report_with_code  # type: ignore[method-assign]
            try:
                super().__init__(context)
            finally:
                del context.report_error

        def report_error(self, error: GraphQLError) -> None:
            error.extensions = {**(error.extensions or {}), "code": code}
            super().report_error(error)

    CodedRule.__name__ = CodedRule.__qualname__ = f"{rule.__name__}_{code}"
    return CodedRule


class QueryDepthLimit(QueryDepthLimiter):
    """At most ``max_depth`` levels of nested fields (introspection fields not counted)."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(max_depth=max_depth)
        self.validation_rules = [coded_rule(r, QUERY_TOO_DEEP) for r in self.validation_rules]


class AliasLimit(MaxAliasesLimiter):
    """At most ``max_alias_count`` aliases, which would otherwise multiply the work."""

    def __init__(self, max_alias_count: int) -> None:
        super().__init__(max_alias_count=max_alias_count)
        self.validation_rules = [coded_rule(r, TOO_MANY_ALIASES) for r in self.validation_rules]


def limit_rules(*, max_depth: int, max_alias_count: int) -> Callable[[], SchemaExtension]:
    """A factory of the depth and alias limits whose rule classes are built once, here."""
    rules = [
        *QueryDepthLimit(max_depth).validation_rules,
        *AliasLimit(max_alias_count).validation_rules,
    ]

    def factory() -> SchemaExtension:
        return AddValidationRules(rules)

    return factory


class TokenLimit(MaxTokensLimiter):
    """At most ``max_token_count`` tokens: the parser stops there, before validation."""

    def on_parse(self) -> Iterator[None]:
        yield
        too_many = f"Document contains more than {self.max_token_count} tokens."
        for error in self.execution_context.pre_execution_errors or ():
            if isinstance(error, GraphQLSyntaxError) and too_many in error.message:
                error.extensions = {**(error.extensions or {}), "code": TOO_MANY_TOKENS}


_NO_INTROSPECTION = coded_rule(NoSchemaIntrospectionCustomRule, INTROSPECTION_DISABLED)


class IntrospectionForAdmins(SchemaExtension):
    """Introspection only for a signed-in admin (production mode).

    Everyone else learns the schema from the published SDL, not from a probing session.
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if not (isinstance(context, Context) and context.is_admin):
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                _NO_INTROSPECTION,
            )
        yield
