"""The committed SDL and the package's public names."""

from __future__ import annotations

from pathlib import Path

import wfa_keys.graphql
from wfa_keys.graphql import export_schema_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    # Regenerate with `wfa-keys export-schema > schema.graphql` after changing the API.
    assert SCHEMA_FILE.read_text(encoding="utf-8") == export_schema_sdl()


def test_schema_keeps_the_public_contract() -> None:
    sdl = export_schema_sdl()
    for line in [
        "me: User",
        "apiKeys(first: Int = 50, after: String = null, search: String = null, "
        "status: ApiKeyStatus = null, expiringWithinDays: Int = null): ApiKeyConnection!",
        "apiScopes: [ApiScope!]!",
        "apiKey(id: ID!): ApiKey",
        "login(email: String!, password: String!): User!",
        "logout: Boolean!",
        "createApiKey(input: CreateApiKeyInput!): ApiKeyWithSecret!",
        "setApiKeyEnabled(id: ID!, enabled: Boolean!): ApiKey!",
        "regenerateApiKey(id: ID!, gracePeriodMinutes: Int! = 0): ApiKeyWithSecret!",
        "deleteApiKey(id: ID!): DeletedApiKey!",
        "revokePreviousSecret(id: ID!): ApiKey!",
        "updateApiKey(id: ID!, input: UpdateApiKeyInput!): ApiKey!",
        "setOrganizationSettings(input: OrganizationSettingsInput!): Organization!",
        "previousSecretExpiresAt: DateTime",
        "lastUsedIp: String",
        "scopes: [String!]!",
        "allowedCidrs: [String!]!",
        "keyInactivityDays: Int",
        "scopes: [String!] = null",
        "allowedCidrs: [String!] = null",
        "name: String = null",
    ]:
        assert line in sdl


def test_public_names_are_pinned() -> None:
    assert set(wfa_keys.graphql.__all__) == {
        "GraphQLApp",
        "Schema",
        "build_schema",
        "create_graphql_app",
        "export_schema_sdl",
    }
    for name in wfa_keys.graphql.__all__:
        assert getattr(wfa_keys.graphql, name)
