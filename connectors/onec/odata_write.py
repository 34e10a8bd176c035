"""The 1С client's documents through the standard OData interface: read one, create, change,
post (the write mode of a stock base without our extension, stages/egress/onec_odata.py;
posting and the look before it serve the HTTP-service mode too).

:class:`ODataDocuments` is mixed into :class:`~connectors.onec.client.OneCClient` and uses its
plumbing: the base's circuit breaker, one attempt per call (``_send``), the JSON encoding of
values (``_jsonable``) and the failure log (``_log_failure``). Like the rest of the client it
makes ONE attempt and raises an :class:`~connectors.onec.odata.errors.ODataError`; retrying
is the caller's job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from uuid import UUID

import httpx

from connectors.onec.errors import parse_retry_after, posting_error_from_response
from connectors.onec.odata.errors import ODataError, ODataServerError, ODataTransportError
from connectors.onec.wire import ENTITY_SET_RE, TARGET, decode, guid
from mmstream.metrics import EGRESS_ERRORS

if TYPE_CHECKING:
    from connectors.onec.errors import OneCError
    from mmstream.circuit import CircuitBreaker

# The client's logger: these lines kept their logger name when the module was split off.
log = logging.getLogger("connectors.onec.client")


class ODataDocumentMissing(ODataError):
    """The base holds no document with this Ref_Key (PATCH answered 404): the order or
    shipment a delivery names was deleted in 1С or never reached it. Repeating cannot
    help; check the document in 1С, then replay."""

    code = "onec_odata_document_missing"


class ODataDocuments:
    """Documents over the standard OData root ``_odata`` (a mixin of OneCClient)."""

    _odata: str
    _breaker: CircuitBreaker

    if TYPE_CHECKING:  # OneCClient's plumbing

        async def _send(
            self,
            operation: str,
            method: str,
            url: str,
            *,
            transport_error: Any = None,
            **kwargs: Any,
        ) -> httpx.Response: ...

        def _jsonable(self, value: Any) -> Any: ...

        @staticmethod
        def _log_failure(operation: str, status: int, err: OneCError | ODataError) -> None: ...

    async def document_posted(self, entity_set: str, ref_key: UUID | str) -> bool | None:
        """Whether 1С holds the document posted: ``GET {odata}/Document_X(guid'…')?$select=Posted``;
        None when 1С does not have it. Read before posting: a delivery that posted and then
        died before recording it must not post the document a second time."""
        url = self._document_url(entity_set, ref_key) + "?$format=json&$select=Posted"
        response = await self._odata_get(url, entity_set)
        if response is None:
            return None
        body = decode(response)
        return bool(body.get("Posted")) if isinstance(body, dict) else None

    async def post_document(
        self, entity_set: str, ref_key: UUID | str, *, operational: bool = False
    ) -> None:
        """Post a document through the standard OData interface:
        ``POST {odata}/Document_X(guid'…')/Post?PostingModeOperational=false``.

        Posting a posted document re-posts it (1С allows it), so a repeat is harmless.
        Raises an :class:`~connectors.onec.odata.errors.ODataError`:
        :class:`~connectors.onec.errors.ODataPostingRefused` (permanent) when 1С refused,
        :class:`~connectors.onec.errors.ODataObjectLocked` (retriable) on a lock.
        """
        url = (
            self._document_url(entity_set, ref_key)
            + f"/Post?PostingModeOperational={'true' if operational else 'false'}"
        )
        with self._breaker.guard():
            response = await self._odata_call("odata_post", "POST", url, entity_set)
            self._odata_raise("odata_post", response, entity_set)

    async def get_document(self, entity_set: str, ref_key: UUID | str) -> dict[str, Any] | None:
        """The document as 1С holds it (``GET {odata}/Document_X(guid'…')``), or None when
        the base has no document with this Ref_Key: the look before a create."""
        url = self._document_url(entity_set, ref_key) + "?$format=json"
        response = await self._odata_get(url, entity_set)
        return None if response is None else self._odata_record("odata_get", response, entity_set)

    async def create_document(self, entity_set: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Create a document: ``POST {odata}/Document_X?$format=json`` with its fields
        (``Ref_Key`` included: 1С gives the new object that reference); 1С answers 201 and
        the record it wrote (Number, Date, Posted, DataVersion filled in)."""
        if not ENTITY_SET_RE.match(entity_set):
            raise ValueError(f"not a document entity set: {entity_set!r}")
        url = self._odata + quote(entity_set, safe="") + "?$format=json"
        created = await self._odata_write("odata_create", "POST", url, entity_set, record)
        log.info(
            "1c odata write",
            extra={
                "operation": "odata_create",
                "entity_set": entity_set,
                "ref_key": str(created.get("Ref_Key") or ""),
                "number": str(created.get("Number") or ""),
            },
        )
        return created

    async def update_document(
        self, entity_set: str, ref_key: UUID | str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change fields of a document: ``PATCH {odata}/Document_X(guid'…')?$format=json``;
        1С answers 200 and the record. A Ref_Key the base does not hold raises
        :class:`ODataDocumentMissing` (404)."""
        url = self._document_url(entity_set, ref_key) + "?$format=json"
        updated = await self._odata_write(
            "odata_patch", "PATCH", url, entity_set, fields, ref_key=ref_key
        )
        log.info(
            "1c odata write",
            extra={
                "operation": "odata_patch",
                "entity_set": entity_set,
                "ref_key": str(ref_key).lower(),
                "fields": sorted(fields),
            },
        )
        return updated

    async def _odata_get(self, url: str, entity_set: str) -> httpx.Response | None:
        """GET one document's address; None when the base has no such document (404)."""
        with self._breaker.guard():
            response = await self._odata_call("odata_get", "GET", url, entity_set)
            if response.status_code == 404:
                return None
            self._odata_raise("odata_get", response, entity_set)
        return response

    async def _odata_write(
        self,
        operation: str,
        method: str,
        url: str,
        entity_set: str,
        body: Mapping[str, Any],
        *,
        ref_key: UUID | str | None = None,
    ) -> dict[str, Any]:
        """Send ``body`` as JSON and return the record 1С answers. With ``ref_key`` (a change
        of that document) a 404 is :class:`ODataDocumentMissing`."""
        payload = json.dumps(self._jsonable(body), ensure_ascii=False).encode()
        with self._breaker.guard():
            response = await self._odata_call(
                operation,
                method,
                url,
                entity_set,
                content=payload,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            if ref_key is not None and response.status_code == 404:
                said = posting_error_from_response(404, decode(response), entity_set=entity_set)
                err = ODataDocumentMissing(
                    404,
                    said.odata_code,
                    f"no document {str(ref_key).lower()}: {str(said).partition(']')[2].strip()}",
                    entity_set=entity_set,
                )
                self._log_failure(operation, 404, err)
                raise err
            self._odata_raise(operation, response, entity_set)
        return self._odata_record(operation, response, entity_set)

    async def _odata_call(
        self, operation: str, method: str, url: str, entity_set: str, **kwargs: Any
    ) -> httpx.Response:
        return await self._send(
            operation,
            method,
            url,
            transport_error=lambda name: ODataTransportError(
                None, message=f"{name}: no answer from 1С", entity_set=entity_set
            ),
            **kwargs,
        )

    def _odata_raise(self, operation: str, response: httpx.Response, entity_set: str) -> None:
        """Raise 1С's refusal of an OData request (inside the breaker's guard)."""
        if response.is_success:
            return
        # /Post's classifier reads 1С's runtime text: a lock, a closed period, a refusal.
        err = posting_error_from_response(
            response.status_code, decode(response), entity_set=entity_set
        )
        if isinstance(err, ODataServerError):
            err.retry_after = parse_retry_after(response.headers.get("retry-after"))
        self._log_failure(operation, response.status_code, err)
        raise err

    @staticmethod
    def _odata_record(operation: str, response: httpx.Response, entity_set: str) -> dict[str, Any]:
        body = decode(response)
        if not isinstance(body, dict) or "Ref_Key" not in body:
            err = ODataServerError(
                response.status_code,
                "",
                f"{operation}: the answer is not a 1С record",
                entity_set=entity_set,
            )
            EGRESS_ERRORS.labels(TARGET, err.code).inc()
            raise err
        return {k: v for k, v in body.items() if k != "odata.metadata"}

    def _document_url(self, entity_set: str, ref_key: UUID | str) -> str:
        """``{odata}Document_X(guid'…')``, the address of one document."""
        if not ENTITY_SET_RE.match(entity_set):
            raise ValueError(f"not a document entity set: {entity_set!r}")
        ref = guid(ref_key, "ref_key")
        return self._odata + quote(f"{entity_set}(guid'{ref}')", safe="()'/")
