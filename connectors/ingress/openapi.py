"""The bridge's OpenAPI document: what every operation shares, and the committed openapi.yaml.

:func:`finish` post-processes FastAPI's document once: the error body schema, the security
schemes (bearer JWT or X-API-Key, required by default), the ``Idempotency-Key`` header on
every guarded POST and the error answers every route can give (401/403 when guarded, 400/409/413/415/422
with a body, 404 with path parameters, 429, 503), without routes having to list them. A status a route documents
itself is left as the route wrote it.

The committed ``openapi.yaml`` must match the app; regenerate it with
``.venv/bin/python scripts/gen_openapi.py`` (``--check`` only compares).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from connectors.ingress.errors import ErrorKind
from mmstream.settings import REPO_ROOT

OPENAPI_FILE = REPO_ROOT / "openapi.yaml"
REGENERATE = ".venv/bin/python scripts/gen_openapi.py"
#: Operations with this tag (probes, metrics) document their own answers.
OPERATIONS_TAG = "operations"

_ERROR_REF = "#/components/schemas/Error"
_FASTAPI_VALIDATION_REF = "#/components/schemas/HTTPValidationError"
_BODY_METHODS = ("post", "put", "patch")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "The body of every error answer of the bridge.",
    "required": ["error", "request_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Machine-readable error code.",
                    "enum": sorted({kind.code for kind in ErrorKind}),
                },
                "message": {"type": "string", "description": "For humans."},
                "details": {
                    "type": "array",
                    "items": {},
                    "description": "Per-field problems, when there are any.",
                },
            },
        },
        "request_id": {"type": "string", "description": "The request's X-Request-Id."},
    },
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
# component name -> (status, description, extra headers)
_RESPONSES: dict[str, tuple[int, str, dict]] = {
    "BadRequest": (
        400,
        "The body or a header cannot be read (`invalid_json`, `bad_request`), or "
        "its JSON is nested deeper than `ingress.max_json_depth` (`json_too_deep`).",
        {},
    ),
    "Unauthenticated": (
        401,
        "No valid bearer token or X-API-Key (`unauthenticated`).",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "Forbidden": (403, "The caller lacks the role this route needs (`forbidden`).", {}),
    "NotFound": (
        404,
        "Nothing is known by this name in the path (`not_found`, `unknown_object`).",
        {},
    ),
    "IdempotencyInProgress": (
        409,
        "A request with this Idempotency-Key is still being processed "
        "(`idempotency_in_progress`); retry for its answer.",
        _RETRY_AFTER,
    ),
    "BodyTooLarge": (
        413,
        "The body is larger than the route's limit (`body_too_large`); "
        "`ingress.max_body_bytes` unless the route says otherwise; a record larger "
        "than Kafka takes, `ingress.max_record_bytes` (`record_too_large`); a form "
        "with too many or too deep fields (`form_too_large`).",
        {},
    ),
    "UnsupportedMediaType": (
        415,
        "The body's content type is not one this route reads (`unsupported_media_type`).",
        {},
    ),
    "ValidationFailed": (
        422,
        "The request is not valid (`validation_failed`), or its "
        "Idempotency-Key was used for a different request (`idempotency_key_reused`).",
        {},
    ),
    "RateLimited": (429, "Over this client's rate limit (`rate_limited`).", _RETRY_AFTER),
    "Unavailable": (
        503,
        "Nothing was stored: Kafka or the database did not answer in time "
        "(`broker_unavailable`, `database_unavailable`); retry later.",
        _RETRY_AFTER,
    ),
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "description": "Makes the POST safe to re-send: the same key with the same request replays "
    "the first answer (header `Idempotent-Replayed: true`) instead of storing "
    "twice. Scoped to the caller and the path; remembered `ingress.idempotency_ttl_s`.",
}
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256 token with a `roles` claim (1c, courier, admin); "
        "`mmctl token --role 1c --subject NAME` issues one.",
    },
    "apiKeyAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A per-source static key from `auth.api_keys` (name -> key, roles).",
    },
}


def finish(schema: dict) -> dict:
    """Add what every operation shares to FastAPI's document (in place; returned)."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    components["parameters"] = {"IdempotencyKey": _IDEMPOTENCY_KEY}
    components["responses"] = {
        name: {
            "description": text,
            **({"headers": headers} if headers else {}),
            "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
        }
        for name, (_, text, headers) in _RESPONSES.items()
    }
    schema["security"] = [{"bearerAuth": []}, {"apiKeyAuth": []}]
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method in _METHODS:
                _document(method, operation)
    text = json.dumps(schema)
    if _FASTAPI_VALIDATION_REF not in text:
        components["schemas"].pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in text:
            components["schemas"].pop("ValidationError", None)
    return schema


def _document(method: str, operation: dict) -> None:
    responses = operation.setdefault("responses", {})
    for status, answer in list(responses.items()):
        # FastAPI documents its own validation body; the bridge answers with the error body.
        if _FASTAPI_VALIDATION_REF in json.dumps(answer):
            responses[status] = {"$ref": "#/components/responses/ValidationFailed"}
    if OPERATIONS_TAG in operation.get("tags", []):
        return
    names = ["RateLimited", "Unavailable"]
    guarded = operation.get("security") != []
    if guarded:
        names += ["Unauthenticated", "Forbidden"]
    if method in _BODY_METHODS:
        names += ["BadRequest", "BodyTooLarge", "UnsupportedMediaType", "ValidationFailed"]
    elif operation.get("parameters"):
        names.append("ValidationFailed")
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        names.append("NotFound")
    # Keys are scoped to a verified principal (token or API key): routes that authenticate by
    # their own protocol do not get them.
    if method == "post" and guarded:
        names.append("IdempotencyInProgress")
        params = operation.setdefault("parameters", [])
        if not any(p.get("name", "").lower() == "idempotency-key" for p in params):
            params.append({"$ref": "#/components/parameters/IdempotencyKey"})
    for name in names:
        responses.setdefault(str(_RESPONSES[name][0]), {"$ref": f"#/components/responses/{name}"})


def render(schema: dict) -> str:
    """The document as YAML with sorted keys, so the same app always gives the same text."""
    plain = json.loads(json.dumps(schema))
    return yaml.safe_dump(
        plain, sort_keys=True, allow_unicode=True, width=1_000_000, default_flow_style=False
    )


def current_yaml() -> str:
    """openapi.yaml as the code defines it now (default settings: the document does not
    depend on them)."""
    from connectors.ingress.app import create_app
    from mmstream.settings import Settings

    return render(create_app(Settings(_env_file=None)).openapi())
