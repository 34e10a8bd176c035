"""One emulated portal: its state (products, call log, faults, rate limit, operating time)
and the execution of REST calls against it."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from datetime import UTC, datetime
from typing import Any

from devstack.emulators.bitrix24 import (
    catalog,
    crm,
    crm_writes,
    directory,
    inventory,
    read_methods,
    work_writes,
)
from devstack.emulators.bitrix24.batch import run_batch
from devstack.emulators.bitrix24.entities import CRM_TYPES, EntityStore
from devstack.emulators.bitrix24.envelope import ApiError, OperatingTime, Outcome
from devstack.emulators.bitrix24.faults import Fault, take_fault
from devstack.emulators.bitrix24.store import Method, ProductStore
from mmstream.ratelimit import LeakyBucket

logger = logging.getLogger(__name__)


def _server_time(_store: ProductStore, _params: dict[str, Any]) -> tuple[Any, Any, Any]:
    # Allowed to every webhook and application: the portal's clock, ISO 8601 with its offset.
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds"), None, None


_METHODS: dict[str, Method] = {**catalog.METHODS, **crm.METHODS, "server.time": _server_time}

#: The trace headers (X-Request-Id, traceparent) of the HTTP request being served: set by
#: the app for each request, shown with every call it made in the call log.
TRACE_HEADERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "emulator_trace_headers", default=None
)
_ENTITY_METHODS: dict[str, read_methods.EntityMethod] = {
    **read_methods.METHODS,
    **crm_writes.METHODS,
    **work_writes.METHODS,
}
_DIRECTORY_METHODS: dict[str, directory.DirectoryMethod] = directory.METHODS
_INVENTORY_METHODS: dict[str, inventory.InventoryMethod] = inventory.METHODS


class UnknownEntity(ValueError):
    """An admin request named an entity the emulator does not keep."""


class Portal:
    """The state of one emulated portal and the execution of REST calls against it."""

    def __init__(
        self, webhook_path: str, rate_per_s: float, burst: int, catalog_iblock_id: int
    ) -> None:
        self.webhook_path = "/" + webhook_path.strip("/") + "/"
        self.catalog_iblock_id = catalog_iblock_id
        self.bucket = LeakyBucket(rate_per_s, burst)
        self.store = ProductStore(catalog_iblock_id)
        self.entities = EntityStore()
        self.directory = directory.Directory(lambda ident: ident in self.store.products)
        self.inventory = self._inventory()
        self.calls: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._operating = OperatingTime()

    def reset(self) -> None:
        """Back to an empty portal: no products, entities, calls or faults, a drained bucket."""
        self.store = ProductStore(self.catalog_iblock_id)
        self.entities = EntityStore()
        self.directory = directory.Directory(lambda ident: ident in self.store.products)
        self.inventory = self._inventory()
        self.calls.clear()
        self.faults.clear()
        self._operating.reset()
        self.bucket.reset()

    def _inventory(self) -> inventory.Inventory:
        # Looked up at call time: reset() replaces the stores and products it refers to.
        return inventory.Inventory(
            lambda ident: ident in self.directory.rows["store"],
            lambda ident: ident in self.store.products,
        )

    def record(self, method: str, params: Any, status: int, *, in_batch: bool = False) -> None:
        """Append one call to the call log that ``GET /_emulator/calls`` shows."""
        self.calls.append(
            {
                "method": method,
                "params": params,
                "status": status,
                "ts": time.time(),
                "in_batch": in_batch,
                **(TRACE_HEADERS.get() or {}),
            }
        )

    async def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run one top-level REST call; (HTTP status, JSON body)."""
        start = time.time()
        if self.bucket.try_acquire() > 0:
            self.record(method, params, 503)
            return 503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        outcome = await self._run(method, params, start, batch=method == "batch")
        self.record(method, params, outcome.status)
        return outcome.status, outcome.body()

    async def _run(
        self, method: str, params: dict[str, Any], start: float, *, batch: bool = False
    ) -> Outcome:
        handler = _METHODS.get(method)
        entity_handler = _ENTITY_METHODS.get(method)
        directory_handler = _DIRECTORY_METHODS.get(method)
        inventory_handler = _INVENTORY_METHODS.get(method)
        if (
            handler is None
            and entity_handler is None
            and directory_handler is None
            and inventory_handler is None
            and not batch
        ):
            return Outcome(404, error=ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"))
        fault = take_fault(self.faults, method, params)
        if fault is not None and fault.status >= 400:
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            out = Outcome(
                fault.status, error=ApiError(fault.status, fault.error, fault.description)
            )
            if fault.error.upper() == "OPERATION_TIME_LIMIT":
                out.time = self._operating.block(method, start, time.time(), account=False)
                out.time["operating_reset_at"] = int(time.time() + fault.reset_in_s)
            return out
        try:
            if batch:
                result, total, nxt = await run_batch(params, self._run, self.record), None, None
            elif handler is not None:
                result, total, nxt = handler(self.store, params)
            elif directory_handler is not None:
                result, total, nxt = directory_handler(self.directory, params)
            elif inventory_handler is not None:
                result, total, nxt = inventory_handler(self.inventory, params)
            else:
                result, total, nxt = entity_handler(self.entities, params)
            out = Outcome(200, result=result, total=total, next=nxt)
        except ApiError as exc:
            out = Outcome(exc.status, error=exc)
        except Exception:
            # Answer like the portal does rather than with a bare ASGI 500 page; the
            # traceback goes to the log and the call log shows the 500.
            logger.exception("emulator failed executing %s", method)
            out = Outcome(
                500, error=ApiError(500, "INTERNAL_SERVER_ERROR", "Internal server error")
            )
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if out.error is None:
            out.time = self._operating.block(method, start, time.time())
        return out

    def put_entity(self, entity: str, ident: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Admin seeding: create or overwrite an entity as a user edit would (version = now)."""
        if entity in CRM_TYPES:
            # A deal's goods come with it (``PRODUCT_ROWS``), as a user filling in the deal
            # card saves both at once; stored as crm.deal.productrows.set would.
            rows = fields.pop("PRODUCT_ROWS", None) if entity == "deal" else None
            record = self.entities.put_crm(entity, ident, fields)
            if rows is not None:
                crm_writes.METHODS["crm.deal.productrows.set"](
                    self.entities, {"id": ident, "rows": rows}
                )
            return record
        if entity == "task":
            return self.entities.put_task(ident, fields)
        if entity == "product":
            product = self.store.put(ident, fields)
            self.entities.log_change("product", ident, "upsert", product["timestampX"])
            return dict(product)
        if entity.startswith("item:") and entity[5:].isdigit() and int(entity[5:]) > 0:
            return self.entities.put_item(int(entity[5:]), ident, fields)
        raise UnknownEntity(entity)

    def delete_entity(self, entity: str, ident: int) -> bool:
        """Admin removal, as a user deleting it; whether it existed."""
        if entity == "product":
            existed = self.store.products.pop(ident, None) is not None
            if existed:
                self.entities.log_change("product", ident, "delete", None)
                # The portal deletes a product's prices with it.
                prices = self.directory.rows["price"]
                for price_id in [k for k, p in prices.items() if p.get("productId") == ident]:
                    del prices[price_id]
            return existed
        if entity in self.directory.rows:  # store, priceType, price
            existed = self.directory.rows[entity].pop(ident, None) is not None
            if existed and entity == "priceType":
                # As with a product: the portal deletes the prices of a deleted price type.
                prices = self.directory.rows["price"]
                for price_id in [k for k, p in prices.items() if p.get("catalogGroupId") == ident]:
                    del prices[price_id]
            return existed
        if self.entities.table(entity) is None:
            raise UnknownEntity(entity)
        return self.entities.delete(entity, ident)
