"""The error responses every operation can give, added to the OpenAPI document.

FastAPI documents only each route's success and its 422. The errors below come from shared
machinery (authentication, lookups by id, body parsing, the maintenance switch, a database
failover), so they are declared here by rule rather than on each route. Routes still declare
their own specific errors (e.g. 409 on a forbidden state change) with `responses=`; those win.
The `Link` header of paged lists (see paging.py) is declared by rule too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .maintenance import ALWAYS_OPEN
from .paging import LINK_HEADER

ERROR_SCHEMA = "ErrorDetail"


def error_response(description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
        **extra,
    }


BAD_BODY = error_response("The body cannot be read (not UTF-8, not JSON), or a value is refused")
UNAUTHENTICATED = error_response("No credentials, or invalid ones (Bearer token or x-api-key)")
FORBIDDEN = error_response("Not allowed to this caller (role, kind of caller, or admin action)")
NOT_FOUND = error_response("No such object, or not visible to the caller")
GONE = error_response("The job was removed: the detail says by whom, when and why")
TOO_LARGE = error_response("The body is over its size limit (see docs/limits.md)")
URI_TOO_LONG = error_response("The path and query string are over their size limit")
UNAVAILABLE = error_response(
    "Maintenance switch, or no writable database (failover in progress): retry later",
    headers={"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
)


def _add_error_responses(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = {
        "title": ERROR_SCHEMA,
        "type": "object",
        "properties": {"detail": {"type": "string", "title": "Detail"}},
        "required": ["detail"],
    }
    # FastAPI's 422 reply is replaced (validation.validation_failed): describe the new one.
    schemas["ValidationError"] = {
        "title": "ValidationError",
        "type": "object",
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
        "required": ["loc", "msg", "type"],
    }
    schemas["HTTPValidationError"] = {
        "title": "HTTPValidationError",
        "type": "object",
        "properties": {
            "detail": {"type": "string", "description": "every error, readable"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
        },
        "required": ["detail", "errors"],
    }
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            parameters = operation.get("parameters", [])
            headers = {p["name"].lower() for p in parameters if p.get("in") == "header"}
            if "requestBody" in operation:
                responses.setdefault("400", BAD_BODY)
                responses.setdefault("413", TOO_LARGE)
            responses.setdefault("414", URI_TOO_LONG)
            if headers & {"authorization", "x-api-key"}:
                responses.setdefault("401", UNAUTHENTICATED)
                responses.setdefault("403", FORBIDDEN)
            if any(p.get("in") == "path" for p in parameters):
                responses.setdefault("404", NOT_FOUND)
            if "{job_id}" in path:
                responses.setdefault("410", GONE)
            if path not in ALWAYS_OPEN:
                responses.setdefault("503", UNAVAILABLE)
            if any(p.get("name") == "from_index" for p in parameters) and "200" in responses:
                responses["200"].setdefault("headers", {})["Link"] = LINK_HEADER  # paged list


def document_error_responses(app: FastAPI) -> None:
    """Make `app.openapi()` declare the shared error responses (computed once, then cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            _add_error_responses(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
