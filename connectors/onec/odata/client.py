"""An async client of a 1С base's standard OData interface: one GET per call, JSON only.

``GET {base_url}{EntitySet}?$format=json&$filter=…&$orderby=…&$top=…&$skip=…`` with basic
auth from the settings. Each call makes exactly one attempt and returns the ``value`` list
or raises the error :func:`~connectors.onec.odata.errors.error_from_response` chose;
retrying is the poller's job (the next scan). The password appears in no log line.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from connectors.onec.odata.errors import (
    ODataError,
    ODataServerError,
    ODataTransportError,
    error_from_response,
)
from connectors.onec.odata.query import entity_set_path, query_string
from mmstream.errors import ConfigurationError
from mmstream.settings import ODataSettings

log = logging.getLogger(__name__)


class ODataClient:
    """Reads entity sets of one 1С publication (``settings.base_url``)."""

    def __init__(
        self, settings: ODataSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        if not settings.base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"MM_ODATA__BASE_URL must be an http(s) URL, got {settings.base_url!r}"
            )
        self._base = (
            settings.base_url if settings.base_url.endswith("/") else settings.base_url + "/"
        )
        password = settings.password.get_secret_value()
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s),
            auth=httpx.BasicAuth(settings.username, password) if settings.username else None,
            headers={"Accept": "application/json"},
            # A redirect would carry the credentials to wherever it points.
            follow_redirects=False,
        )

    async def query(
        self,
        entity_set: str,
        *,
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        skip: int | None = None,
    ) -> list[dict[str, Any]]:
        """The records of ``entity_set`` matching the options, in the order asked."""
        try:
            path = entity_set_path(entity_set)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        url = f"{self._base}{path}?" + query_string(
            format="json", filter=filter, orderby=orderby, top=top, skip=skip
        )
        try:
            resp = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise ODataTransportError(
                None, message=f"{type(exc).__name__}: {exc}", entity_set=entity_set
            ) from exc
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text
        if resp.status_code != 200:
            raise error_from_response(resp.status_code, body, entity_set=entity_set)
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise ODataServerError(
                resp.status_code,
                message="the answer is not an OData JSON document with a value list",
                entity_set=entity_set,
            )
        return value

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> ODataClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["ODataClient", "ODataError"]
