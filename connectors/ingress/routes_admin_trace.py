"""``GET /v1/admin/trace/{id}``: the timeline of one entity (``mmctl trace`` over HTTP),
read-only, for the ``admin`` role. See mmstream/trace/timeline.py for what an id may be."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request

from connectors.ingress.auth import require_role
from connectors.ingress.errors import ApiError, ErrorKind
from mmstream.trace.timeline import collect, dlq_rows

router = APIRouter(prefix="/v1/admin", tags=["Admin"])

# Ids are GUIDs, numbers, hex request ids: nothing longer or stranger is looked up.
_ID = Path(
    min_length=1,
    max_length=200,
    pattern=r"^[A-Za-z0-9._:~-]+$",
    description="A 1С GUID, Bitrix24 id, canonical id, event id (ce_id) or request id (X-Request-Id).",
)


@router.get(
    "/trace/{ident}",
    summary="The timeline of one entity: ingress, versions, outbox, egress calls, parks, DLQ, replays",
    dependencies=[Depends(require_role("admin"))],
    responses={
        200: {"description": "the timeline (empty steps: nothing recorded, or purged)"},
        401: {"description": "no credentials"},
        403: {"description": "not an admin"},
        503: {"description": "no database configured"},
    },
)
async def trace(
    request: Request,
    ident: str = _ID,
    dlq: bool = Query(
        False,
        description="Also scan the DLQ topics (slower: reads every DLQ topic from its beginning).",
    ),
) -> dict[str, Any]:
    engine = request.app.state.engine
    if engine is None:
        raise ApiError(
            ErrorKind.DATABASE_UNAVAILABLE, "no database configured: the trace reads PostgreSQL"
        )
    settings = request.app.state.settings
    timeline = await collect(engine, ident, dlq=dlq_rows(settings) if dlq else None)
    return timeline.as_dict()
