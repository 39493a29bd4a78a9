"""The GraphQL admin API: sign in, then manage the organization's API keys."""

from wfa_keys.graphql.schema import Schema, build_schema, export_schema_sdl
from wfa_keys.graphql.view import GraphQLApp, create_graphql_app

__all__ = ["GraphQLApp", "Schema", "build_schema", "create_graphql_app", "export_schema_sdl"]
