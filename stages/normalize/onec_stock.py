"""Stock on ``raw.onec.stock`` -> canonical Stock (and a Warehouse a CommerceML file names
only by a non-GUID id). Pure.

The topic carries two shapes, told apart by ``_source``:

* CommerceML offers (``"_source": "commerceml"``, see connectors/commerceml/raw_records.py): one
  record per offer and warehouse, whichever layout the file used — ``Предложение/Количество``
  (the total over all warehouses: ``warehouse_id`` null), ``<Склад ИдСклада=…
  КоличествоНаСкладе=…/>`` (2.04–2.07) or ``Остатки/Остаток[/Склад/Ид]`` (2.08+). The
  version is the bridge's content hash; the file says no moment, so ``as_of`` stays empty and
  a later exchange simply replaces the row. УТ exports write a warehouse GUID; a site-made
  file may name a warehouse ``w1``: it gets a derived id. Either way a Warehouse is emitted
  with the name from the package's ``Склады`` (the bridge keeps them for the exchange session
  when 3.x declares them in another file): in a CommerceML-only setup no 1С catalog record
  describes it, and Bitrix24 needs the store before the balance.
* 1С accumulation-register balances (``AccumulationRegister_ТоварыНаСкладах/Balance`` of
  УТ 11, ``…ТоварыНаСкладах`` / ``ОстаткиТоваровОрганизаций``-style registers of УТ 10.3),
  one record per warehouse × product × characteristic: ``Склад_Key``, ``Номенклатура_Key``,
  ``Характеристика_Key`` (УТ 10.3 ``ХарактеристикаНоменклатуры_Key``), the quantity as
  ``ВНаличииBalance`` (УТ 11) or ``КоличествоBalance`` (УТ 10.3; plain ``ВНаличии`` /
  ``Количество`` accepted too) and the reserve as ``ВРезервеСоСкладаBalance``. The sender
  must ask for the balance by those three dimensions only (``Dimensions=…``): a balance split
  by further dimensions (series, purpose) would give several records of one stock row, each
  replacing the last. ``Period`` (the balance moment) is ``as_of`` and orders versions
  (``source_stamp``). A Balance row has no Period: the moment the bridge took it
  (``ce_time``) is its ``as_of`` and stamp. The version is ``DataVersion`` or the content
  hash; a content hash (also what the OData reader writes into ``DataVersion``) gets the
  moment appended: a balance that goes 5 → 3 → 5 would otherwise repeat a version the sink
  has seen and be dropped as stale, leaving 3. A replayed older balance is still refused
  (older stamp). 1С leaves zero balances out of the Balance table: the OData reader
  publishes a row that vanished from it as a zero balance (``…Balance`` 0), not a deletion.
  Movements never get here: the bridge refuses them (connectors/onec/validation.py).
* the middleware's reservations for couriers' instant orders (``"_source": "middleware"``,
  written by stages/egress/bitrix24_stock.py): see
  :mod:`stages.normalize.derive_stock_reservation`.

Either way the stock id is :func:`mmstream.models.stock.stock_id` (warehouse, product,
characteristic), the same for both shapes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from mmstream.models.base import Canonical, derived_id
from mmstream.models.stock import Stock, stock_id
from mmstream.models.warehouse import Warehouse
from stages.normalize import derive_stock_reservation
from stages.normalize import onec_common as common
from stages.normalize.oddities import (
    Unnormalizable,
    b24_datetime,
    decimal,
    onec_datetime,
    ref,
    text,
    yes_no,
)
from stages.normalize.registry import Context

TOPICS = ("raw.onec.stock",)

# Quantity and reserve resources, УТ 11 names first; "Balance" is what a /Balance query adds.
_QUANTITY = ("ВНаличииBalance", "КоличествоBalance", "ВНаличии", "Количество")
_RESERVE = ("ВРезервеСоСкладаBalance", "ВРезервеBalance", "ВРезервеСоСклада")


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One CommerceML stock record or register balance -> [Stock] (or [Warehouse, Stock])."""
    record = common.record_of(value)
    if record.get("_source") == "commerceml":
        return from_commerceml(record)
    if record.get("_source") == derive_stock_reservation.SOURCE:
        return [derive_stock_reservation.from_record(record)]
    if record.get("_source") not in (None, "onec"):
        raise Unnormalizable(f"_source: unknown stock source {str(record['_source'])[:40]!r}")
    return [from_register(record, ctx, headers)]


def from_commerceml(record: Mapping[str, Any]) -> list[Canonical]:
    """A CommerceML stock record (one offer on one warehouse, or its total)."""
    product = _required(ref(record.get("product_id"), "product_id"), "product_id")
    characteristic = ref(record.get("characteristic_id"), "characteristic_id")
    version = text(record.get("version"))
    if not version:
        raise Unnormalizable("version: missing")
    quantity = decimal(record.get("quantity"), "quantity")
    if quantity is None:
        raise Unnormalizable("quantity: missing")
    key = text(record.get("warehouse_id"))
    name = text(record.get("warehouse_name"))
    guid = _guid(key) if key else None
    if guid is not None and guid.int == 0:
        key, guid = "", None  # the empty reference: no warehouse, the total
    warehouse = guid or (derived_id("warehouse", "commerceml", key) if key else None)
    offer = text(record.get("offer_id")) or str(product)
    stock = Stock(
        id=stock_id(warehouse, product, characteristic),
        source="commerceml",
        version=version,
        deleted=bool(yes_no(record.get("deleted"), "deleted")),
        external_ids={"commerceml": f"{offer}:{key}" if key else offer},
        warehouse_id=warehouse,
        product_id=product,
        characteristic_id=characteristic,
        quantity=quantity,
        warehouse_name=name,
    )
    if not key or not name:
        return [stock]
    # A GUID warehouse is described here too: in a CommerceML-only setup no 1С catalog
    # record ever comes, and without a Warehouse its stock could never reach a Bitrix24
    # store. The content-hash version repeats with every stock row of that warehouse: the
    # sink drops the repeats as duplicates.
    digest = hashlib.sha256(f"{key}\x1f{name}".encode()).hexdigest()
    named = Warehouse(
        id=warehouse,
        source="commerceml",
        version=f"h:{digest[:32]}",
        external_ids={"onec" if guid is not None else "commerceml": key},
        name=name,
    )
    return [named, stock]


def from_register(
    record: Mapping[str, Any], ctx: Context, headers: Mapping[str, str] | None = None
) -> Stock:
    """An accumulation-register balance record (УТ 11 or УТ 10.3 names); ``headers`` give
    the moment the bridge took a balance without Period (``ce_time``)."""
    warehouse = _required(
        ref(record.get("Склад_Key"), "Склад_Key"),
        "Склад_Key (a balance by warehouse is what stock is)",
    )
    product = _required(ref(record.get("Номенклатура_Key"), "Номенклатура_Key"), "Номенклатура_Key")
    characteristic = common.first_ref(
        record, "Характеристика_Key", "ХарактеристикаНоменклатуры_Key"
    )
    gone = common.is_deletion(record)
    quantity = _first_number(record, _QUANTITY)
    if quantity is None and not gone:
        raise Unnormalizable(f"{' / '.join(_QUANTITY[:2])}: missing")
    period = onec_datetime(record.get("Period"), ctx.onec_tz, "Period")
    if period is None and (headers or {}).get("ce_time"):
        period = b24_datetime((headers or {})["ce_time"], ctx.onec_tz, "ce_time")
    version = text(record.get("DataVersion")) or _content_hash(record)
    if period is not None and version.startswith(("h:", "deleted:")):
        # A content hash (ours, or the OData reader's) repeats when a balance comes back to
        # an earlier value; 1С's own DataVersion never does.
        version = f"{version}@{period.isoformat()}"
    return Stock(
        id=stock_id(warehouse, product, characteristic),
        source="onec",
        version=version,
        source_stamp=period,
        deleted=gone,
        warehouse_id=warehouse,
        product_id=product,
        characteristic_id=characteristic,
        quantity=quantity,
        reserve=_first_number(record, _RESERVE),
        as_of=period,
    )


def _first_number(record: Mapping[str, Any], fields: tuple[str, ...]) -> Any:
    for name in fields:
        found = decimal(record.get(name), name)
        if found is not None:
            return found
    return None


def _content_hash(record: Mapping[str, Any]) -> str:
    # A /Balance answer has no DataVersion: the content is the version, so an unchanged
    # balance re-sent gives the same version and the sink drops it as a duplicate. ASCII
    # escapes: a stray surrogate in some field must not break the hash (the field's own
    # check names it).
    body = json.dumps(record, ensure_ascii=True, sort_keys=True, separators=(",", ":"), default=str)
    return "h:" + hashlib.sha256(body.encode()).hexdigest()[:32]


def _guid(raw: str) -> UUID | None:
    try:
        return UUID(raw)
    except ValueError:
        return None


def _required(value: Any, field: str) -> Any:
    if value is None:
        raise Unnormalizable(f"{field}: missing or the empty reference")
    return value
