"""``GET /api/openapi.json``: the key-authenticated API as an OpenAPI 3.1 document.

Written by hand from the routes of :mod:`wfa_keys.api` (there is no framework here to
generate it), and checked by ``openapi-spec-validator`` in the tests, which also compare its
paths with the routes. Clients in any language generate their code from it; the two key
headers are one security requirement, since either alone is refused.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from wfa_keys.verification import CODES, MAX_CACHE_TTL

__all__ = ["OPENAPI_PATH", "openapi_document", "openapi_endpoint"]

#: Below the API's mount point (``/api``).
OPENAPI_PATH = "/openapi.json"

_ERROR = {"$ref": "#/components/schemas/Error"}
_SECURED: list[dict[str, list[str]]] = [
    {"bearerToken": []},
    {"keyBasic": []},
    # Both headers in one requirement: they are sent together.
    {"keyIdHeader": [], "keySecretHeader": []},
]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _refusals(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "The body is malformed.",
        401: "Missing, invalid, disabled or expired credentials (error says which).",
        403: "The key lacks a scope (insufficient_scope) or the address is not allowed.",
        429: "Too many failed attempts; see Retry-After.",
        503: "Authentication is unavailable for a moment; see Retry-After.",
    }
    return {str(status): _json(_ERROR, texts[status]) for status in statuses}


def openapi_document(server_url: str = "/") -> dict[str, Any]:
    """The document, with ``server_url`` (where the API is mounted) as its one server."""
    key = {
        "type": "object",
        "required": [
            "key_id",
            "name",
            "organization_id",
            "owner_email",
            "scopes",
            "allowed_cidrs",
            "expires_at",
        ],
        "properties": {
            "key_id": {"type": "string"},
            "name": {"type": "string"},
            "organization_id": {"type": "string"},
            "organization_name": {"type": "string"},
            "owner_id": {"type": "string"},
            "owner_email": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "allowed_cidrs": {"type": "array", "items": {"type": "string"}},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Workflow Automation API",
            "version": "1",
            "description": (
                "Authenticated by API key: a Bearer access token from the token endpoint, or "
                "the Key ID and Key Secret (HTTP Basic, or the X-API-Key-ID and "
                "X-API-Key-Secret headers together)."
            ),
        },
        "servers": [{"url": server_url}],
        "security": _SECURED,
        "paths": {
            "/v1/auth/api-key/token": {
                "post": {
                    "operationId": "issueToken",
                    "summary": "Trade a Key ID and Key Secret for an access token.",
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/KeyCredentials"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["access_token", "token_type", "expires_in"],
                                "properties": {
                                    "access_token": {"type": "string"},
                                    "token_type": {"const": "Bearer"},
                                    "expires_in": {"type": "integer"},
                                },
                            },
                            "The token, valid expires_in seconds.",
                        ),
                        **_refusals(400, 401, 403, 429, 503),
                    },
                }
            },
            "/v1/whoami": {
                "get": {
                    "operationId": "whoami",
                    "summary": "Who the key belongs to.",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "key_id": {"type": "string"},
                                    "key_name": {"type": "string"},
                                    "owner_email": {"type": "string"},
                                    "organization": {"type": "string"},
                                    "organization_id": {"type": "string"},
                                    "scopes": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                            "The key.",
                        ),
                        **_refusals(401, 403, 429, 503),
                    },
                }
            },
            "/v1/workflows": {
                "get": {
                    "operationId": "listWorkflows",
                    "summary": "The organization's newest workflows (scope workflows:read).",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "workflows": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Workflow"},
                                    }
                                },
                            },
                            "The workflows.",
                        ),
                        **_refusals(401, 403, 429, 503),
                    },
                },
                "post": {
                    "operationId": "createWorkflow",
                    "summary": "Create a workflow (scope workflows:write).",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["name"],
                                    "properties": {"name": {"type": "string", "maxLength": 100}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json({"$ref": "#/components/schemas/Workflow"}, "Created."),
                        **_refusals(400, 401, 403, 429, 503),
                    },
                },
            },
            "/v1/keys/verify": {
                "post": {
                    "operationId": "verifyKey",
                    "summary": "Verify a key or token of the caller's organization "
                    "(scope keys:verify).",
                    "description": (
                        "Answers 200 for every well-formed request. Failures are throttled by "
                        "client_ip within the calling key. A VALID answer may be reused for "
                        "cache_ttl seconds; follow /v1/keys/changes to drop it on a change."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/VerifyRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Verification"}, "The verdict."),
                        **_refusals(400, 401, 403, 429, 503),
                    },
                }
            },
            "/v1/keys/changes": {
                "get": {
                    "operationId": "keyChanges",
                    "summary": "Server-Sent Events of the organization's key changes "
                    "(scope keys:verify).",
                    "description": (
                        "Events: ready {resumed}, key_changed {key_id, kind}, keys_changed "
                        "{key_id: null, kind} (every key of the organization), reset {reason} "
                        "(drop everything cached), heartbeat {} at least every 15 s. Resume "
                        "with the Last-Event-ID header."
                    ),
                    "parameters": [
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "pattern": "^[0-9]+$"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The stream (text/event-stream), open until closed.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_refusals(401, 403, 429, 503),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access token from POST /v1/auth/api-key/token.",
                },
                "keyBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The Key ID as user name, the Key Secret as password.",
                },
                "keyIdHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key-ID"},
                "keySecretHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key-Secret"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "scope": {"type": "string"},
                    },
                },
                "KeyCredentials": {
                    "type": "object",
                    "required": ["key_id", "key_secret"],
                    "properties": {
                        "key_id": {"type": "string"},
                        "key_secret": {"type": "string"},
                    },
                },
                "Workflow": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "created_by_key_id": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                    },
                },
                "VerifyRequest": {
                    "type": "object",
                    "properties": {
                        "key_id": {"type": "string"},
                        "key_secret": {"type": "string"},
                        "token": {"type": "string"},
                        "required_scopes": {"type": "array", "items": {"type": "string"}},
                        "client_ip": {
                            "type": "string",
                            "description": "The address the calling app saw, for the key's "
                            "allow-list, throttles and lastUsedIp.",
                        },
                    },
                    "oneOf": [
                        {"required": ["key_id", "key_secret"]},
                        {"required": ["token"]},
                    ],
                },
                "Verification": {
                    "type": "object",
                    "required": ["valid", "code", "key", "cache_ttl"],
                    "properties": {
                        "valid": {"type": "boolean"},
                        "code": {"enum": list(CODES)},
                        "key": {"oneOf": [key, {"type": "null"}]},
                        "cache_ttl": {"type": "integer", "minimum": 0, "maximum": MAX_CACHE_TTL},
                        "reason": {
                            "type": "string",
                            "description": "The middleware's own error code, for every "
                            "refusal but INVALID_CREDENTIALS; with THROTTLED: "
                            "too_many_attempts, or rate_limited or quota_exceeded (the "
                            "key's own limits, applied to each verification).",
                        },
                        "retry_after": {"type": "integer"},
                    },
                },
            },
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    """The document, its server being where the API is mounted (behind a proxy included)."""
    import orjson

    document = openapi_document(request.scope.get("root_path", "") or "/")
    return Response(orjson.dumps(document), media_type="application/json")
