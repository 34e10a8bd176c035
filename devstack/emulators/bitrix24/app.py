"""The emulator's HTTP surface: the webhook REST route, the admin endpoints, ``/health``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from devstack.emulators.bitrix24.envelope import ApiError
from devstack.emulators.bitrix24.faults import (
    Fault,
    FaultSpec,
    Storm,
    StormMiddleware,
    StormSpec,
    bitrix24_storm_answer,
    take_fault,
)
from devstack.emulators.bitrix24.oauth import OAuthServer
from devstack.emulators.bitrix24.php import php_parse
from devstack.emulators.bitrix24.portal import TRACE_HEADERS, Portal, UnknownEntity
from mmstream.ratelimit import LeakyBucket


class LimitsSpec(BaseModel):
    """Body of ``PUT /_emulator/limits``."""

    rate_per_s: float = Field(gt=0)
    burst: int = Field(ge=1)


def create_app(
    *,
    webhook_path: str = "/rest/1/devwebhookcode/",
    rate_per_s: float = 2.0,
    burst: int = 50,
    catalog_iblock_id: int = 14,
    oauth_client_id: str = "local.mmstream.emulator",
    oauth_client_secret: str = "dev-only-oauth-secret",  # noqa: S107 — the emulator's own
    oauth_token_ttl_s: float = 3600.0,
) -> FastAPI:
    """A FastAPI app emulating one Bitrix24 portal reached at ``{webhook_path}{method}.json``
    (incoming webhook) and at ``/rest/{method}.json`` with an ``auth`` token (OAuth
    application ``oauth_client_id``; tokens from ``/oauth/token/`` or, for tests, from
    ``POST /_emulator/oauth/tokens``).

    ``rate_per_s``/``burst`` size the portal's leaky bucket; ``catalog_iblock_id`` is the
    product catalog that ``crm.product.*`` reads and writes when no CATALOG_ID is given.
    The emulator state is ``app.state.emulator``; the OAuth server ``app.state.oauth``.
    """
    emu = Portal(webhook_path, rate_per_s, burst, catalog_iblock_id)
    oauth = OAuthServer(oauth_client_id, oauth_client_secret, oauth_token_ttl_s)
    app = FastAPI(title="Bitrix24 REST emulator", docs_url=None, redoc_url=None)
    app.state.emulator = emu
    app.state.oauth = oauth
    app.state.storm = None
    app.add_middleware(
        StormMiddleware, prefix="/rest/", answer=bitrix24_storm_answer, holder=app.state
    )

    def rest_endpoint(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/rest/"

    @app.api_route("/oauth/token/", methods=["GET", "POST"])
    @app.api_route("/oauth/token", methods=["GET", "POST"], include_in_schema=False)
    async def token(request: Request) -> JSONResponse:
        try:
            params = await _read_params(request)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        # Faults with method "oauth.token" hit the token endpoint.
        fault = take_fault(emu.faults, "oauth.token", {})
        if fault is not None:
            status, body = (
                fault.status,
                {"error": fault.error, "error_description": fault.description},
            )
        else:
            status, body = oauth.grant(params, rest_endpoint(request))
        emu.record("oauth.token", {"grant_type": params.get("grant_type")}, status)
        return JSONResponse(body, status_code=status)

    @app.post("/_emulator/oauth/tokens")
    async def issue_tokens(request: Request) -> dict[str, Any]:
        return oauth.issue(rest_endpoint(request))

    @app.post("/_emulator/oauth/expire")
    async def expire_tokens() -> dict[str, int]:
        return {"expired": oauth.expire_all()}

    @app.get("/_emulator/oauth")
    async def oauth_stats() -> dict[str, int]:
        return oauth.stats()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/_emulator/faults")
    async def add_fault(spec: FaultSpec) -> dict[str, Any]:
        emu.faults.append(Fault(**spec.model_dump()))
        return {"faults": [asdict(f) for f in emu.faults]}

    @app.get("/_emulator/faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": [asdict(f) for f in emu.faults]}

    @app.delete("/_emulator/faults")
    async def clear_faults() -> dict[str, Any]:
        cleared = len(emu.faults)
        emu.faults.clear()
        return {"cleared": cleared}

    @app.post("/_emulator/storm")
    async def start_storm(spec: StormSpec) -> dict[str, Any]:
        app.state.storm = Storm(spec)
        return app.state.storm.status()

    @app.get("/_emulator/storm")
    async def storm_status() -> dict[str, Any]:
        return app.state.storm.status() if app.state.storm else {"active": False}

    @app.delete("/_emulator/storm")
    async def stop_storm() -> dict[str, Any]:
        storm, app.state.storm = app.state.storm, None
        return {**storm.status(), "active": False} if storm else {"active": False}

    @app.get("/_emulator/calls")
    async def list_calls(method: str | None = None) -> list[dict[str, Any]]:
        if method is None:
            return list(emu.calls)
        return [c for c in emu.calls if c["method"] == method.lower()]

    @app.get("/_emulator/products")
    async def list_products() -> list[dict[str, Any]]:
        return [dict(p) for p in emu.store.products.values()]

    @app.post("/_emulator/users")
    async def put_user(fields: dict[str, Any]) -> dict[str, Any]:
        # REST cannot create users without an invitation: tests seed them here.
        return emu.directory.put_user(fields)

    @app.get("/_emulator/directory/{kind}")
    async def list_directory(kind: str) -> JSONResponse:
        if kind == "user":
            return JSONResponse(list(emu.directory.users.values()))
        if kind not in emu.directory.rows:
            return JSONResponse(
                {"error": f"unknown kind {kind!r}: store, priceType, price or user"},
                status_code=404,
            )
        return JSONResponse(list(emu.directory.rows[kind].values()))

    @app.get("/_emulator/entities/{entity}")
    async def list_entities(entity: str) -> JSONResponse:
        table = emu.entities.table(entity)
        if table is None:
            return _unknown_entity(entity)
        return JSONResponse([dict(r) for r in table.values()])

    @app.put("/_emulator/entities/{entity}/{ident}")
    async def put_entity(entity: str, ident: int, fields: dict[str, Any]) -> JSONResponse:
        try:
            return JSONResponse(emu.put_entity(entity, ident, fields))
        except UnknownEntity:
            return _unknown_entity(entity)

    @app.delete("/_emulator/entities/{entity}/{ident}")
    async def delete_entity(entity: str, ident: int) -> JSONResponse:
        try:
            existed = emu.delete_entity(entity, ident)
        except UnknownEntity:
            return _unknown_entity(entity)
        return JSONResponse({"deleted": existed}, status_code=200 if existed else 404)

    @app.get("/_emulator/changes")
    async def list_changes(entity: str | None = None) -> list[dict[str, Any]]:
        return [c for c in emu.entities.changes if entity is None or c["entity"] == entity]

    @app.post("/_emulator/reset")
    async def reset() -> dict[str, bool]:
        emu.reset()
        oauth.reset()
        app.state.storm = None
        return {"ok": True}

    @app.get("/_emulator/limits")
    async def get_limits() -> dict[str, Any]:
        return {"rate_per_s": emu.bucket.rate_per_s, "burst": emu.bucket.burst}

    @app.put("/_emulator/limits")
    async def set_limits(spec: LimitsSpec) -> dict[str, Any]:
        emu.bucket = LeakyBucket(spec.rate_per_s, spec.burst)
        return {"rate_per_s": spec.rate_per_s, "burst": spec.burst}

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def rest(request: Request, path: str) -> JSONResponse:
        full = "/" + path
        # The call log shows what trace headers each call came with.
        TRACE_HEADERS.set(
            {
                "request_id": request.headers.get("x-request-id", ""),
                "traceparent": request.headers.get("traceparent", ""),
            }
        )
        oauth_method = full[len("/rest/") :] if full.startswith("/rest/") else ""
        if oauth_method and "/" not in oauth_method and not full.startswith(emu.webhook_path):
            return await _oauth_rest(request, _method_of(oauth_method))
        if not full.startswith(emu.webhook_path) or "/" in full[len(emu.webhook_path) :]:
            emu.record(_method_of(full.rsplit("/", 1)[-1]), None, 401)
            return JSONResponse(
                {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"},
                status_code=401,
            )
        method = _method_of(full[len(emu.webhook_path) :])
        try:
            params = await _read_params(request)
        except ApiError as exc:
            emu.record(method, None, exc.status)
            return JSONResponse(exc.body(), status_code=exc.status)
        status, body = await emu.handle(method, params)
        return JSONResponse(body, status_code=status)

    async def _oauth_rest(request: Request, method: str) -> JSONResponse:
        try:
            params = await _read_params(request)
        except ApiError as exc:
            emu.record(method, None, exc.status)
            return JSONResponse(exc.body(), status_code=exc.status)
        # The token is not a method parameter, and stays out of the call log.
        refused = oauth.check(params.pop("auth", None))
        if refused is not None:
            emu.record(method, params, refused.status)
            return JSONResponse(refused.body(), status_code=refused.status)
        status, body = await emu.handle(method, params)
        return JSONResponse(body, status_code=status)

    return app


def _unknown_entity(entity: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": f"unknown entity {entity!r}: deal, lead, contact, company, "
            "task, product or item:<entityTypeId>"
        },
        status_code=404,
    )


def _method_of(segment: str) -> str:
    for suffix in (".json", ".xml"):
        if segment.lower().endswith(suffix):
            segment = segment[: -len(suffix)]
    # Method names are case-insensitive on a portal.
    return segment.lower()


async def _read_params(request: Request) -> dict[str, Any]:
    params = php_parse(request.query_params.multi_items())
    if request.method != "POST":
        return params
    raw = await request.body()
    if not raw.strip():
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type or raw.lstrip()[:1] == b"{":
        try:
            data = json.loads(raw)
        except ValueError:
            raise ApiError(400, "INVALID_REQUEST", "Request body is not valid JSON") from None
        if isinstance(data, dict):
            params.update(data)
        return params
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "INVALID_REQUEST", "Request body is not UTF-8") from None
    params.update(php_parse(parse_qsl(text, keep_blank_values=True)))
    return params
