"""Bitrix24 side of the reconcile: what each master-data entity looks like there, read page
by page within a share of the portal budget.

Each :class:`Spec` names the canonical table, the list method and the external key field,
and reuses the egress action's own pure mapping (stages/egress/bitrix24_*.py) for the
fields we own, so "what we would write" is defined once. Listing pages by id
(``filter >id``, ``order id ASC``, ``start=-1``: the portal skips counting, the documented
fast way through a large list), 50 rows a call, through the project's client and its
rate limiter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stages.egress.bitrix24_master import (
    ORIGINATOR,
    counterparty_fields,
    crm_kind,
    parse_crm_key,
    price_fields,
    price_type_fields,
    store_fields,
)
from stages.egress.bitrix24_product import product_fields
from stages.egress.courier_documents import DONE, deal_id, status_fields
from stages.egress.deliveries import (
    TASK_DEFERRED,
    camel_field,
    task_description,
    task_title,
    upper_field,
)
from stages.reconcile.drift import Canonical, TargetRow, is_ours

TARGET = "bitrix24"


@dataclass(frozen=True)
class Family:
    """One list method of the portal and how its rows look."""

    method: str
    #: Key of the row list in a ``catalog.*.list`` answer (None: the answer is the list).
    many: str | None
    id_field: str
    select: tuple[str, ...]
    #: Filter every page carries (products: the configured iblock).
    base_filter: Mapping[str, Any] = field(default_factory=dict)
    #: Prefix of the crosswalk external id (``company:``), empty for plain ids.
    prefix: str = ""
    #: A key built from the row, kept as ``_key`` (a price: product and price type).
    key_of: Callable[[Mapping[str, Any]], str] | None = None
    #: The id as the method's ``filter`` and ``order`` name it, when not ``id_field``
    #: (``tasks.task.list`` takes UPPER_CASE and answers camelCase).
    filter_id: str | None = None
    #: Parameters every call carries besides the filter (``crm.item.list``: entityTypeId).
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """How one canonical entity is compared with Bitrix24."""

    entity: str
    table: str
    key_field: str
    families: tuple[Family, ...]
    #: Canonical row (as JSON) -> the target row it should produce, or None when egress
    #: writes nothing for it (an echo, a folder); ``linked`` is the crosswalk's id, ``links``
    #: the crosswalks of the entities in ``needs`` (entity -> canonical id -> external id).
    expect: Callable[
        [dict[str, Any], str | None, Mapping[str, Mapping[str, str]]], Canonical | None
    ]
    keyless_is_ours: bool = False
    orphan: Callable[[str, Mapping[str, Any]], bool] = lambda key, _row: is_ours(key)
    #: Entities whose crosswalk ``expect`` reads.
    needs: tuple[str, ...] = ()
    #: Drift kinds the pipeline cannot repair, with what to tell the operator.
    unrepairable: Mapping[str, str] = field(default_factory=dict)


def _drop(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in names}


def _from_source(row: dict[str, Any]) -> bool:
    """Whether egress writes this row at all: 1С owns the master data; a version from
    Bitrix24 is an echo (bitrix24_master.is_echo) and folders have no counterpart."""
    return row.get("source") != TARGET and not row.get("is_folder")


def _product(row: dict[str, Any], linked: str | None, _links: Any = None) -> Canonical | None:
    if row.get("source") == TARGET:
        return None
    fields = _drop(product_fields(row), "xmlId")
    # A deleted product stays in the portal, deactivated; it need not be there at all.
    return Canonical(str(row["id"]), fields, linked, present=not row.get("deleted"))


def _warehouse(row: dict[str, Any], linked: str | None, _links: Any = None) -> Canonical | None:
    if not _from_source(row):
        return None
    if row.get("deleted"):
        return Canonical(str(row["id"]), {"active": "N"}, linked, present=False)
    return Canonical(str(row["id"]), _drop(store_fields(row), "xmlId"), linked)


def _price_type(row: dict[str, Any], linked: str | None, _links: Any = None) -> Canonical | None:
    if not _from_source(row):
        return None
    # A deletion is left to an administrator (PriceTypeAction): nothing to compare.
    if row.get("deleted"):
        return Canonical(str(row["id"]), {}, linked, present=False)
    return Canonical(str(row["id"]), _drop(price_type_fields(row), "xmlId"), linked)


#: The CRM fields compared: the name and type; multi-fields, the manager and the partner
#: link depend on other objects and on the portal's value ids.
_CRM_OWNED = ("TITLE", "COMPANY_TYPE", "NAME", "LAST_NAME", "SECOND_NAME")


def _counterparty(row: dict[str, Any], linked: str | None, _links: Any = None) -> Canonical | None:
    if not _from_source(row) or row.get("kind") is None or "onec" not in (row.get("writers") or []):
        return None
    parsed = parse_crm_key(linked)
    kind = parsed[0] if parsed else crm_kind(row)
    if row.get("deleted"):
        # A deletion leaves the record to the managers (CounterpartyAction).
        return Canonical(str(row["id"]), {}, linked, present=False)
    fields = counterparty_fields(row, kind)
    return Canonical(str(row["id"]), {k: v for k, v in fields.items() if k in _CRM_OWNED}, linked)


def price_key(product_id: Any, price_type_id: Any) -> str:
    """A portal price's natural key: ``<productId>:<catalogGroupId>``."""
    return f"{int(product_id)}:{int(price_type_id)}"


def _price(
    row: dict[str, Any], linked: str | None, links: Mapping[str, Mapping[str, str]]
) -> Canonical | None:
    # As PriceAction: variants are not delivered, a deletion leaves the portal's price, and
    # a price waits for its product and price type (their own drift covers them).
    if (
        row.get("source") == TARGET
        or row.get("characteristic_id")
        or row.get("deleted")
        or row.get("price") is None
    ):
        return None
    product = links.get("product", {}).get(str(row.get("product_id")))
    ptype = links.get("price_type", {}).get(str(row.get("price_type_id")))
    if product is None or ptype is None or not product.isdigit() or not ptype.isdigit():
        return None
    fields = price_fields(row, int(product), int(ptype))
    return Canonical(
        str(row["id"]),
        {"price": fields["price"], "currency": fields["currency"]},
        linked,
        key=price_key(product, ptype),
    )


def _crm_orphan(key: str, row: Mapping[str, Any]) -> bool:
    # Only records our egress created carry our ORIGINATOR_ID; another integration's
    # ORIGIN_ID is theirs.
    return str(row.get("ORIGINATOR_ID") or "") == ORIGINATOR and is_ours(key)


def _delivery_task(item_mode: bool) -> Callable[..., Canonical | None]:
    """Delivery tasks as DeliveryTaskAction writes them: only rows 1С described (the order
    data is 1С's); a task whose order was deleted in 1С is deferred, not removed."""

    def expect(row: dict[str, Any], linked: str | None, _links: Any = None) -> Canonical | None:
        if "onec" not in (row.get("writers") or []):
            return None  # a courier's own task: nothing of it is written to the portal
        ident = str(row["id"])
        if row.get("deleted"):
            return Canonical(
                ident, {} if item_mode else {"status": TASK_DEFERRED}, linked, present=False
            )
        if item_mode:
            return Canonical(ident, {"title": task_title(row)}, linked)
        return Canonical(
            ident, {"title": task_title(row), "description": task_description(row)}, linked
        )

    return expect


def delivery_task_spec(
    task_id_field: str = "xmlId", item_type_id: int | None = None, item_id_field: str = ""
) -> Spec:
    """Delivery tasks: ``tasks.task`` keyed by ``task_id_field``, or, when the portal keeps
    deliveries in a smart process, its items keyed by ``item_id_field``."""
    if item_type_id is None:
        return Spec(
            "delivery_task",
            "delivery_task",
            camel_field(task_id_field),
            (
                Family(
                    "tasks.task.list",
                    "tasks",
                    "id",
                    ("ID", "TITLE", "DESCRIPTION", "STATUS", upper_field(task_id_field)),
                    prefix="task:",
                    filter_id="ID",
                ),
            ),
            _delivery_task(False),
        )
    return Spec(
        "delivery_task",
        "delivery_task",
        item_id_field,
        (
            Family(
                "crm.item.list",
                "items",
                "id",
                ("id", "title", item_id_field),
                prefix=f"item:{item_type_id}:",
                params={"entityTypeId": item_type_id},
            ),
        ),
        _delivery_task(True),
    )


#: Deals carry no key of ours (couriers create them): matched by the crosswalk's id alone.
_NO_KEY = "_mm_no_key"


def courier_deal_spec(
    entity: str, category_id: int, *, status_field: str, document_field: str
) -> Spec:
    """The status and 1С number the egress writes on a courier's deal (InstantOrderStatus,
    ReturnStatus), read back from the deals of the courier funnel ``category_id``."""
    number_field = "onec_number" if entity == "instant_order" else "number"

    def expect(row: dict[str, Any], linked: str | None, _links: Any = None) -> Canonical | None:
        deal = deal_id(row)
        if row.get("deleted") or deal is None or row.get("status") not in DONE:
            return None  # nothing written to the deal yet (the status is new)
        fields = status_fields(
            str(row.get("status") or ""),
            str(row.get(number_field) or ""),
            status_field=status_field,
            document_field=document_field,
        )
        return Canonical(str(row["id"]), fields, f"deal:{deal}")

    return Spec(
        entity,
        entity,
        _NO_KEY,
        (
            Family(
                "crm.deal.list",
                None,
                "ID",
                ("ID", "CATEGORY_ID", status_field, document_field),
                {"CATEGORY_ID": category_id},
                prefix="deal:",
            ),
        ),
        expect,
        keyless_is_ours=True,
        orphan=lambda _key, _row: False,
        unrepairable={
            "deleted": "the courier's deal is gone from the portal: the status has nowhere to "
            "go; the 1С document stands (runbook: deleted — a courier's deal)"
        },
    )


def specs(
    product_iblock_id: int, *, delivery: Spec | None = None, deals: Iterable[Spec] = ()
) -> dict[str, Spec]:
    """The entities the reconcile compares with Bitrix24, by canonical entity name."""
    return {
        "delivery_task": delivery or delivery_task_spec(),
        "product": Spec(
            "product",
            "product",
            "xmlId",
            (
                Family(
                    "catalog.product.list",
                    "products",
                    "id",
                    ("id", "iblockId", "xmlId", "name", "code", "active", "previewText"),
                    {"iblockId": product_iblock_id},
                ),
            ),
            _product,
        ),
        "warehouse": Spec(
            "warehouse",
            "warehouse",
            "xmlId",
            (
                Family(
                    "catalog.store.list",
                    "stores",
                    "id",
                    ("id", "xmlId", "title", "address", "code", "active", "phone", "description"),
                ),
            ),
            _warehouse,
        ),
        "price_type": Spec(
            "price_type",
            "price_type",
            "xmlId",
            (Family("catalog.priceType.list", "priceTypes", "id", ("id", "xmlId", "name")),),
            _price_type,
        ),
        "counterparty": Spec(
            "counterparty",
            "counterparty",
            "ORIGIN_ID",
            (
                Family(
                    "crm.company.list",
                    None,
                    "ID",
                    ("ID", "ORIGIN_ID", "ORIGINATOR_ID", "TITLE", "COMPANY_TYPE"),
                    prefix="company:",
                ),
                Family(
                    "crm.contact.list",
                    None,
                    "ID",
                    ("ID", "ORIGIN_ID", "ORIGINATOR_ID", "NAME", "LAST_NAME", "SECOND_NAME"),
                    prefix="contact:",
                ),
            ),
            _counterparty,
            keyless_is_ours=True,
            orphan=_crm_orphan,
        ),
        # Keyed by (product, price type) of the portal; no orphans: a price of our product
        # by our type that we do not know is 1С's to say (a re-read of the product's prices).
        "price": Spec(
            "price",
            "price",
            "_key",
            (
                Family(
                    "catalog.price.list",
                    "prices",
                    "id",
                    ("id", "productId", "catalogGroupId", "price", "currency"),
                    key_of=lambda r: price_key(r.get("productId"), r.get("catalogGroupId")),
                ),
            ),
            _price,
            orphan=lambda _key, _row: False,
            needs=("product", "price_type"),
        ),
        **{spec.entity: spec for spec in deals},
    }


def page_rows(family: Family, answer: Any) -> list[dict[str, Any]]:
    """The rows of one list answer (``{"stores": [...]}`` or a bare list)."""
    rows = answer.get(family.many) if family.many and isinstance(answer, dict) else answer
    return [r for r in rows or [] if isinstance(r, dict)]


async def list_family(client: Any, family: Family, *, page_size: int = 50) -> list[TargetRow]:
    """Every row of ``family``, paged by id (each page one call under the client's budget)."""
    out: list[TargetRow] = []
    last = 0
    by = family.filter_id or family.id_field
    while True:
        answer = await client.call(
            family.method,
            {
                **family.params,
                "filter": {**family.base_filter, f">{by}": last},
                "select": list(family.select),
                "order": {by: "ASC"},
                "start": -1,
            },
        )
        rows = page_rows(family, answer)
        for row in rows:
            if family.key_of is not None:
                row = {**row, "_key": family.key_of(row)}
            out.append(TargetRow(f"{family.prefix}{row[family.id_field]}", row))
        ids = [int(r[family.id_field]) for r in rows if str(r.get(family.id_field, "")).isdigit()]
        if len(rows) < page_size or not ids or max(ids) <= last:
            return out
        last = max(ids)
