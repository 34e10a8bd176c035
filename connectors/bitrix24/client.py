"""An async Bitrix24 REST client for one portal, reached through an incoming webhook.

Each :meth:`Bitrix24Client.call` waits for a slot in the client's own leaky bucket (so the
portal's limit is rarely hit), makes exactly ONE attempt and either returns ``result`` or
raises the error :func:`~connectors.bitrix24.errors.error_from_response` chose. Retrying
is the caller's job (``streams.egress.retry``): only the caller knows whether repeating a
write is safe.

The webhook URL contains the secret code, so it appears in no log line and no exception
text: messages name the method only, and httpx's own request log is redacted.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.bitrix24.errors import (
    Bitrix24Error,
    QueryLimitExceeded,
    TransportError,
    error_from_response,
)
from connectors.bitrix24.ratelimit import LeakyBucket
from mmstream.errors import ConfigurationError
from mmstream.settings import Bitrix24Settings

logger = logging.getLogger(__name__)

# A method name goes into the URL path: anything beyond this alphabet could rewrite the URL.
_METHOD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")

_MASK = "/<webhook>/"


class _RedactWebhook(logging.Filter):
    """Masks the webhook URL in httpx's "HTTP Request: POST <url>" INFO lines."""

    def __init__(self, secret_path: str) -> None:
        super().__init__()
        self._secret_path = secret_path

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._secret_path in message:
            record.msg, record.args = message.replace(self._secret_path, _MASK), None
        return True


class Bitrix24Client:
    """Calls Bitrix24 REST methods over an incoming webhook, one attempt per call."""

    def __init__(
        self,
        settings: Bitrix24Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._base = _webhook_base(settings.webhook_url.get_secret_value())
        self._bucket = LeakyBucket(settings.rate_per_s, settings.burst)
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s),
            headers={"Accept": "application/json"},
            # A redirect would be followed to wherever it points, secret included.
            follow_redirects=False,
        )
        # The path (/rest/USER_ID/CODE/) holds the secret; the host stays readable in logs.
        self._redactor = _RedactWebhook(urlsplit(self._base).path)
        logging.getLogger("httpx").addFilter(self._redactor)

    @property
    def bucket(self) -> LeakyBucket:
        """The client's rate limiter (one per client, i.e. per portal connection)."""
        return self._bucket

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call ``method`` once with JSON ``params``; return ``result`` or raise a Bitrix24Error."""
        if not _METHOD_RE.match(method):
            raise ValueError(f"not a Bitrix24 method name: {method!r}")
        await self._bucket.acquire()
        started = time.monotonic()
        try:
            response = await self._http.post(f"{self._base}{method}.json", json=params or {})
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
                httpx.ProxyError) as exc:
            # `from None`: httpx exceptions carry the request (and so the secret URL).
            raise TransportError(None, type(exc).__name__, "no answer from Bitrix24",
                                 method=method) from None
        except httpx.HTTPError as exc:
            raise Bitrix24Error(None, type(exc).__name__, "request could not be sent",
                                method=method) from None
        elapsed = time.monotonic() - started

        body = _decode(response)
        if (
            response.is_success
            and isinstance(body, dict)
            and "result" in body
            and not body.get("error")
        ):
            logger.debug("bitrix24 call", extra={"method": method, "status": response.status_code,
                                                 "duration_s": round(elapsed, 3)})
            return body["result"]

        err = error_from_response(response.status_code, body, method=method)
        if isinstance(err, QueryLimitExceeded):
            # The portal's bucket is fuller than ours (other clients share it): hold ours
            # full for one drain interval so this client backs off too.
            self._bucket.penalize(1.0 / self._bucket.rate_per_s)
        logger.warning(
            "bitrix24 call failed",
            extra={"method": method, "status": response.status_code, "error": err.error,
                   "retriable": err.retriable, "duration_s": round(elapsed, 3)},
        )
        raise err

    async def find_product_by_xml_id(self, xml_id: str) -> int | None:
        """The id of the catalog product with external code ``xml_id``, or None.

        Several matches mean duplicates were created earlier; the oldest (lowest id) wins.
        """
        result = await self.call(
            "catalog.product.list",
            {
                "select": ["id", "iblockId", "xmlId"],
                "filter": {"iblockId": self._settings.product_iblock_id, "xmlId": xml_id},
                "order": {"id": "ASC"},
            },
        )
        products = _products(result)
        if not products:
            return None
        if len(products) > 1:
            logger.warning("duplicate bitrix24 products for one xmlId",
                           extra={"xml_id": xml_id, "count": len(products)})
        return min(int(p["id"]) for p in products)

    async def add_product(self, fields: dict[str, Any]) -> int:
        """Create a catalog product in the configured iblock; return its id."""
        payload = {"iblockId": self._settings.product_iblock_id, **fields}
        result = await self.call("catalog.product.add", {"fields": payload})
        try:
            return int(result["element"]["id"])
        except (TypeError, KeyError, ValueError):
            raise Bitrix24Error(200, "", "catalog.product.add answered without element.id",
                                method="catalog.product.add") from None

    async def update_product(self, product_id: int, fields: dict[str, Any]) -> None:
        """Overwrite the given fields of catalog product ``product_id``."""
        await self.call("catalog.product.update", {"id": product_id, "fields": fields})

    async def aclose(self) -> None:
        """Close the HTTP connections and detach the log redactor."""
        await self._http.aclose()
        logging.getLogger("httpx").removeFilter(self._redactor)

    async def __aenter__(self) -> Bitrix24Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _webhook_base(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.strip("/"):
        # Deliberately not echoing the URL: it holds the webhook secret.
        raise ConfigurationError(
            "bitrix24.webhook_url must be an http(s) URL like https://PORTAL/rest/USER_ID/CODE/"
        )
    return url if url.endswith("/") else url + "/"


def _decode(response: httpx.Response) -> dict[str, Any] | str | None:
    if not response.content:
        return None
    try:
        decoded = response.json()
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        return decoded
    # Proxies and maintenance pages answer HTML; keep the text for the error description.
    return response.text


def _products(result: Any) -> list[dict[str, Any]]:
    # catalog.product.list wraps rows as {"products": [...]}; an empty object may come as [].
    if isinstance(result, dict):
        rows = result.get("products") or []
    elif isinstance(result, list):
        rows = result
    else:
        rows = []
    return [r for r in rows if isinstance(r, dict) and "id" in r]
