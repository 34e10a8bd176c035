"""Master data 1С -> Bitrix24 (flow 1): counterparties, warehouses, price types, prices and
the couriers' user mapping.

Every action is create-or-update by an external key holding our canonical id, looked up
before any create (the crosswalk first, then the portal), so a retry after a timeout whose
call did execute updates instead of creating twice:

* counterparty -> ``crm.company`` (a partner or legal entity) or ``crm.contact`` (a person),
  key ``ORIGIN_ID``; crosswalk external id ``company:42`` / ``contact:7`` as the Bitrix24
  normalizers write it;
* warehouse -> ``catalog.store``, key ``xmlId``;
* price type -> ``catalog.priceType``, key ``xmlId``;
* product -> ``catalog.product`` of the configured catalog, key ``xmlId``
  (stages/egress/bitrix24_product.py, on :class:`_XmlIdAction`);
* price -> ``catalog.price``, key (product, price type) — the pair is unique for a price;
* employee -> an existing Bitrix24 user (users cannot be created over REST), crosswalk
  external id ``user:7``.

Self-repair (stages/egress/relink.py): a crosswalked object a manager deleted in Bitrix24
is created again, and a crosswalked id that now holds another object (a reset portal
reissues ids: its key differs from ours) is relinked instead of overwritten — both after the
look-up by external key, so never twice.

Echo: the entity sink publishes every change, whatever system it came from. 1С owns every
field of these entities, so a version from Bitrix24 can only have added ids (the ownership
merge refuses the rest): it is never written back (None, no call).

The field mappings are pure functions; the actions do the I/O.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from connectors.bitrix24.errors import Bitrix24Error, InvalidRequest
from stages.egress.actions import Targets
from stages.egress.delivery import Change, Crosswalk, DependencyPending
from stages.egress.relink import LinkState, claim, describe, link_state
from stages.outbox.restate import REPAIR_MARK

log = logging.getLogger(__name__)

TARGET = "bitrix24"
#: ORIGINATOR_ID of the CRM records we create: which integration owns ORIGIN_ID.
ORIGINATOR = "mmstream"
#: The Bitrix24 user field the 1С user's GUID is matched against before the e-mails.
USER_KEY_FIELD = "XML_ID"

_CURRENCIES = {
    "руб": "RUB",
    "руб.": "RUB",
    "rur": "RUB",
    "rub": "RUB",
    "643": "RUB",
    "usd": "USD",
    "840": "USD",
    "eur": "EUR",
    "978": "EUR",
}


# -- pure mapping -------------------------------------------------------------------------


def is_echo(payload: dict[str, Any]) -> bool:
    """Whether the change came from Bitrix24 itself (1С owns every field written here). A
    re-stated row (stages/outbox/restate.py: a reconcile repair, a superseded DLQ replay) is
    written whoever wrote its last version: it carries 1С's fields as they stand."""
    return payload.get("source") == TARGET and not payload.get(REPAIR_MARK)


def crm_kind(payload: dict[str, Any]) -> str:
    """``contact`` for a person (a contact, or a legal entity 1С marks as an individual,
    ЮрФизЛицо = ФизЛицо), else ``company``."""
    if payload.get("kind") == "contact" or payload.get("legal_form") == "individual":
        return "contact"
    return "company"


def crm_key(kind: str, ident: Any) -> str:
    """``company:42``: the crosswalk external id of a CRM record (contacts and companies
    share numbers, so the kind is part of it)."""
    return f"{kind}:{int(ident)}"


def parse_crm_key(key: str | None) -> tuple[str, int] | None:
    """(``company``, 42) from ``company:42``; None for None or another shape."""
    kind, _, number = (key or "").partition(":")
    return (kind, int(number)) if kind and number.isdigit() else None


def split_person_name(name: str) -> dict[str, str]:
    """A 1С full name, «Фамилия Имя Отчество», as LAST_NAME / NAME / SECOND_NAME; a single
    word is the NAME (Bitrix24 shows NAME first)."""
    parts = name.split()
    if len(parts) == 1:
        return {"NAME": parts[0], "LAST_NAME": "", "SECOND_NAME": ""}
    return {
        "LAST_NAME": parts[0] if parts else "",
        "NAME": parts[1] if len(parts) > 1 else "",
        "SECOND_NAME": " ".join(parts[2:]),
    }


def multifield_values(
    current: list[dict[str, Any]] | None, wanted: list[str]
) -> list[dict[str, Any]]:
    """The multi-field value list that turns ``current`` (the portal's values, with ids)
    into ``wanted``: a kept value is left out, a gone one is sent with its id and an empty
    VALUE (removes it), a new one without an id (adds it) — the portal adds every value
    without an id, so sending the plain list on each update would duplicate them."""
    have = [v for v in current or [] if isinstance(v, dict)]
    have_values = {str(v.get("VALUE", "")).strip() for v in have}
    wanted = [w.strip() for w in wanted if w and w.strip()]
    out: list[dict[str, Any]] = [
        {"ID": str(v["ID"]), "VALUE": ""}
        for v in have
        if str(v.get("VALUE", "")).strip() not in wanted
    ]
    out += [
        {"VALUE": w, "VALUE_TYPE": "WORK"} for w in dict.fromkeys(wanted) if w not in have_values
    ]
    return out


def counterparty_fields(
    payload: dict[str, Any],
    kind: str,
    *,
    company_id: int | None = None,
    assigned_by_id: int | None = None,
) -> dict[str, Any]:
    """Canonical counterparty -> ``crm.company`` or ``crm.contact`` fields (UPPER_CASE),
    without the multi-fields. INN/KPP live in Bitrix24 requisites, not on the record."""
    name = str(payload.get("name") or payload.get("full_name") or "").strip()
    fields: dict[str, Any] = {
        "ORIGIN_ID": str(payload["id"]),
        "ORIGINATOR_ID": ORIGINATOR,
        "COMMENTS": payload.get("comment") or "",
        "ADDRESS": payload.get("address") or "",
    }
    if kind == "company":
        fields["TITLE"] = name
        if payload.get("is_customer"):
            fields["COMPANY_TYPE"] = "CUSTOMER"
        elif payload.get("is_supplier"):
            fields["COMPANY_TYPE"] = "SUPPLIER"
    else:
        fields.update(split_person_name(name))
        fields["TYPE_ID"] = "CLIENT"
        if company_id is not None:
            fields["COMPANY_ID"] = company_id
    if assigned_by_id is not None:
        fields["ASSIGNED_BY_ID"] = assigned_by_id
    return fields


def store_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Canonical warehouse -> ``catalog.store`` fields (the 1С GUID is the xmlId). The
    portal requires an address: a warehouse without one shows its name there."""
    phones = payload.get("phones") or []
    name = str(payload.get("name") or "")
    return {
        "title": name,
        "address": payload.get("address") or name,
        "xmlId": str(payload["id"]),
        "code": payload.get("code") or "",
        "active": "N" if payload.get("deleted") else "Y",
        "phone": phones[0] if phones else "",
        "description": payload.get("comment") or "",
    }


def price_type_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Canonical price type -> ``catalog.priceType`` fields. ``base`` is left to the portal:
    exactly one type is its base, an administrator's choice."""
    return {"name": str(payload.get("name") or ""), "xmlId": str(payload["id"])}


def currency_code(payload: dict[str, Any], default: str = "RUB") -> str:
    """The ISO code of the price's currency: CommerceML text (``руб``) mapped, an ISO code
    kept; a 1С currency reference (no code in the row) is the default currency."""
    raw = str(payload.get("currency") or "").strip()
    if not raw:
        return default
    mapped = _CURRENCIES.get(raw.lower())
    if mapped:
        return mapped
    return raw.upper() if len(raw) == 3 and raw.isalpha() and raw.isascii() else default


def price_fields(payload: dict[str, Any], product_id: int, price_type_id: int) -> dict[str, Any]:
    """Canonical price -> ``catalog.price`` fields for a product and price type of the portal."""
    try:
        amount = Decimal(str(payload.get("price")))
    except InvalidOperation:
        raise ValueError(f"price {payload.get('price')!r} is not a number") from None
    return {
        "productId": product_id,
        "catalogGroupId": price_type_id,
        "price": float(amount),
        "currency": currency_code(payload),
    }


def user_lookups(payload: dict[str, Any], key_field: str = USER_KEY_FIELD) -> list[dict[str, Any]]:
    """``user.get`` filters to try in order: our GUID in ``key_field``, then each e-mail."""
    filters = [{key_field: str(payload["id"])}]
    filters += [{"EMAIL": e.strip()} for e in payload.get("emails") or [] if e and e.strip()]
    return filters


# -- actions ------------------------------------------------------------------------------


async def first_row(
    client: Any,
    family: str,
    many: str,
    flt: dict[str, Any],
    select: tuple[str, ...] = ("id", "xmlId"),
) -> dict[str, Any] | None:
    """The first ``catalog.<family>`` row (lowest id) passing ``flt`` as ``{id, xmlId}``,
    or None: how a crosswalked id is checked and a row found by its xmlId. Several rows
    with one xmlId mean duplicates were created earlier: the oldest wins."""
    found = await client.call(
        f"catalog.{family}.list", {"filter": flt, "select": list(select), "order": {"id": "ASC"}}
    )
    rows = [r for r in (found or {}).get(many) or [] if isinstance(r, dict)]
    return rows[0] if rows else None


class _MasterAction:
    """What the master-data actions share: the portal client."""

    target: ClassVar[str] = TARGET
    entity: ClassVar[str]

    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self.client = targets.bitrix24


class CounterpartyAction(_MasterAction):
    """A 1С counterparty as a Bitrix24 company or contact (:func:`crm_kind`), keyed by
    ``ORIGIN_ID`` = canonical id. The kind is decided when the record is created; later
    changes update that record. Groups (``is_folder``) have no Bitrix24 counterpart. A
    deletion leaves the record (its deals and history belong to the managers): nothing is
    called. The manager and the partner company are linked when the crosswalk already
    knows them; their absence does not hold the counterparty back."""

    entity: ClassVar[str] = "counterparty"

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Create or update the company/contact; ``company:<id>`` or ``contact:<id>``."""
        payload = change.payload
        if is_echo(payload) or payload.get("is_folder"):
            return None
        known = await xwalk.external_id(self.entity, self.target, change.entity_id)
        if change.deleted or payload.get("kind") is None:
            return known
        parsed = parse_crm_key(known)
        kind = parsed[0] if parsed else crm_kind(payload)
        linked = parsed[1] if parsed else None
        try:
            ident = await self._write(change, kind, linked, xwalk)
        except InvalidRequest as exc:
            if not exc.not_found or linked is None:
                # Bad input; or the record found by ORIGIN_ID went meanwhile: retries decide.
                raise
            # Deleted in Bitrix24 between the read and the update: created again (after
            # the look-up by ORIGIN_ID, so never twice).
            log.warning(
                describe(
                    LinkState.GONE, self.entity, change.entity_id, str(known), None, "ORIGIN_ID"
                )
            )
            ident = await self._write(change, kind, None, xwalk)
        key = crm_key(kind, ident)
        if known != key:
            await claim(xwalk, self.entity, self.target, change.entity_id, key)
        return key

    async def _write(self, change: Change, kind: str, linked: int | None, xwalk: Crosswalk) -> int:
        """Update the record (the crosswalked one while it is ours, else the one with our
        ORIGIN_ID) or add it; its id."""
        payload = change.payload
        current = await self._current(kind, linked, change.entity_id)
        fields = counterparty_fields(
            payload,
            kind,
            company_id=await self._company_of(payload, kind, xwalk),
            assigned_by_id=await self._user_of(payload, xwalk),
        )
        for multi, values in (("PHONE", payload.get("phones")), ("EMAIL", payload.get("emails"))):
            delta = multifield_values((current or {}).get(multi), list(values or []))
            if delta:
                fields[multi] = delta
        if current is None:
            return int(await self.client.call(f"crm.{kind}.add", {"fields": fields}))
        ident = int(current["ID"])
        if ident != linked:
            # Found by ORIGIN_ID (an add whose answer was lost, or a relink): linked before
            # the update, which may fail — see _XmlIdAction.apply.
            await claim(xwalk, self.entity, self.target, change.entity_id, crm_key(kind, ident))
        await self.client.call(f"crm.{kind}.update", {"id": ident, "fields": fields})
        return ident

    async def _current(self, kind: str, ident: int | None, origin: str) -> dict[str, Any] | None:
        """The portal's record (with its multi-field ids): the crosswalked one while it is
        there and ours, else the one with our ORIGIN_ID, else None."""
        if ident is not None:
            try:
                record = await self.client.call(f"crm.{kind}.get", {"id": ident})
            except InvalidRequest as exc:
                if not exc.not_found:
                    raise
                record = None
            # A record born in Bitrix24 has no ORIGIN_ID until our first update stamps it.
            state = link_state(record, "ORIGIN_ID", origin, keyless_is_ours=True)
            if state is LinkState.OURS:
                return record
            log.warning(
                describe(state, self.entity, origin, crm_key(kind, ident), record, "ORIGIN_ID")
            )
        found = await self.client.call(
            f"crm.{kind}.list",
            {
                "filter": {"ORIGIN_ID": origin},
                "select": ["ID", "PHONE", "EMAIL"],
                "order": {"ID": "ASC"},
            },
        )
        return found[0] if found else None

    async def _company_of(self, payload: dict[str, Any], kind: str, xwalk: Crosswalk) -> int | None:
        if kind != "contact":
            return None
        parsed = parse_crm_key(
            await xwalk.external_id(self.entity, self.target, payload.get("partner_id"))
        )
        return parsed[1] if parsed and parsed[0] == "company" else None

    async def _user_of(self, payload: dict[str, Any], xwalk: Crosswalk) -> int | None:
        parsed = parse_crm_key(
            await xwalk.external_id("employee", self.target, payload.get("manager_id"))
        )
        return parsed[1] if parsed and parsed[0] == "user" else None


class _XmlIdAction(_MasterAction):
    """Create-or-update of a ``catalog.*`` row keyed by ``xmlId`` (warehouses, price types):
    the crosswalked row while it is there and ours, else a ``list`` by xmlId, else ``add``
    (and the crosswalk relinked). A deletion creates nothing; it deactivates our known row
    where the family has an active flag."""

    family: ClassVar[str]
    many: ClassVar[str]
    #: Canonical row -> the portal's fields (a pure mapping function).
    fields: ClassVar[staticmethod[[dict[str, Any]], dict[str, Any]]]
    #: Whether a deletion is written as an update (``active: N``) rather than left alone.
    deletes_in_place: ClassVar[bool] = False
    #: Whether groups (``is_folder``) are left out (they have no row of this family).
    skips_folders: ClassVar[bool] = True
    #: Where ``catalog.<family>.add`` answers the new row (``{<added_at>: {id: ...}}``).
    added_at: ClassVar[str | None] = None
    #: Fields the family's ``list`` must select besides ``id`` and ``xmlId``.
    select_also: ClassVar[tuple[str, ...]] = ()

    def scope(self) -> dict[str, Any]:
        """What every ``list`` filter and ``add`` of the family carries (products: the
        catalog's ``iblockId``); nothing for most families."""
        return {}

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Create or update the row; its Bitrix24 id."""
        payload = change.payload
        if is_echo(payload) or (self.skips_folders and payload.get("is_folder")):
            return None
        known = await xwalk.external_id(self.entity, self.target, change.entity_id)
        state, row = LinkState.GONE, None
        if known is not None and (self.deletes_in_place or not change.deleted):
            # The crosswalked row is checked first: a manager may have deleted it, or a
            # reset portal given its id to another row, which must not be overwritten.
            row = await self.find_row({"id": int(known)})
            state = link_state(row, "xmlId", change.entity_id)
        if change.deleted:
            # A deletion may name no more than the id: only the active flag is written —
            # to our row only; one that is gone needs nothing.
            # (OURS implies ``known``: the state comes from the crosswalked row.)
            if state is LinkState.OURS and known is not None and self.deletes_in_place:
                try:
                    await self.client.call(
                        f"catalog.{self.family}.update",
                        {"id": int(known), "fields": {"active": "N"}},
                    )
                except InvalidRequest as exc:
                    # Deleted since the check: nothing is left to deactivate.
                    if not exc.not_found:
                        raise
            return known
        if state is LinkState.OURS and known is not None:
            try:
                await self.client.call(
                    f"catalog.{self.family}.update",
                    {"id": int(known), "fields": self.fields(payload)},
                )
                return known
            except InvalidRequest as exc:
                if not exc.not_found:
                    raise
                state, row = LinkState.GONE, None  # deleted since the check
        if known is not None:
            log.warning(describe(state, self.entity, change.entity_id, known, row, "xmlId"))
        # Not (or no longer) linked: an earlier attempt may have created the row already
        # (a lost answer), so it is looked up by xmlId before any add.
        found = await self.find_row({"xmlId": change.entity_id})
        if found is None:
            added = await self.client.call(
                f"catalog.{self.family}.add", {"fields": {**self.scope(), **self.fields(payload)}}
            )
            try:
                ident = str(int(added[self.added_at or self.family]["id"]))
            except (TypeError, KeyError, ValueError):
                raise Bitrix24Error(
                    200,
                    "",
                    f"catalog.{self.family}.add answered without {self.added_at or self.family}.id",
                    method=f"catalog.{self.family}.add",
                ) from None
            await claim(xwalk, self.entity, self.target, change.entity_id, ident)
        else:
            ident = str(found["id"])
            # Linked before the update: the row carries our key, so it is ours whether or
            # not the update gets through. Linked only after it, an add whose answer was
            # lost stayed unlinked while the portal kept refusing (the link is written when
            # the delivery parks or is dead-lettered too), and whatever resolves the
            # object through the crosswalk (couriers' goods, prices) waited for a calm
            # portal — or for a DLQ replay.
            await claim(xwalk, self.entity, self.target, change.entity_id, ident)
            await self.client.call(
                f"catalog.{self.family}.update", {"id": int(ident), "fields": self.fields(payload)}
            )
        return ident

    async def find_row(self, flt: dict[str, Any]) -> dict[str, Any] | None:
        """The family's first row passing ``flt`` (within :meth:`scope`), or None."""
        return await first_row(
            self.client,
            self.family,
            self.many,
            {**self.scope(), **flt},
            ("id", *self.select_also, "xmlId"),
        )


class WarehouseAction(_XmlIdAction):
    """A 1С warehouse as a ``catalog.store``; a deletion deactivates it."""

    entity: ClassVar[str] = "warehouse"
    family: ClassVar[str] = "store"
    many: ClassVar[str] = "stores"
    deletes_in_place: ClassVar[bool] = True
    fields = staticmethod(store_fields)


class PriceTypeAction(_XmlIdAction):
    """A 1С price type as a ``catalog.priceType``. A price type has no active flag and
    deleting it would delete its prices: a deletion is left to an administrator."""

    entity: ClassVar[str] = "price_type"
    family: ClassVar[str] = "priceType"
    many: ClassVar[str] = "priceTypes"
    fields = staticmethod(price_type_fields)


class PriceAction(_MasterAction):
    """A product's price by one price type as a ``catalog.price``.

    Both the product and the price type must be in Bitrix24 already:
    :meth:`Crosswalk.require` raises :class:`DependencyPending` until their flows have
    delivered them, and the change waits on the delayed path. The price row is found by its
    natural key (product, price type), so no crosswalk entry can go stale. Prices of
    product variants (``characteristic_id``) are not delivered: the product flow does not
    create variants. A deleted price (unposted document) is not removed: the portal keeps
    the last price until 1С sets a new one.
    """

    entity: ClassVar[str] = "price"

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Set the price; its Bitrix24 price id."""
        payload = change.payload
        if is_echo(payload) or change.deleted or payload.get("characteristic_id"):
            return None
        linked_product = await xwalk.require(
            "product", self.target, payload.get("product_id"), "price of a product"
        )
        linked_type = await xwalk.require(
            "price_type", self.target, payload.get("price_type_id"), "price by a price type"
        )
        if linked_product is None or linked_type is None or payload.get("price") is None:
            return None
        # Both links are checked (concurrently: one batch of the packing client) before
        # anything is written: a price must not land on a product a reset portal has given
        # our product's id to.
        product, price_type = await asyncio.gather(
            self._product(str(payload["product_id"]), int(linked_product), xwalk),
            self._price_type(str(payload["price_type_id"]), int(linked_type), xwalk),
        )
        fields = price_fields(payload, product, price_type)
        found = await self.client.call(
            "catalog.price.list",
            {
                "filter": {"productId": product, "catalogGroupId": price_type},
                "select": ["id", "productId", "catalogGroupId"],
            },
        )
        rows = (found or {}).get("prices") or []
        ident = None
        if rows:
            ident = str(rows[0]["id"])
            try:
                await self.client.call("catalog.price.update", {"id": int(ident), "fields": fields})
            except InvalidRequest as exc:
                if not exc.not_found:
                    raise
                ident = None  # deleted since the look-up: set again below
        if ident is None:
            added = await self.client.call("catalog.price.add", {"fields": fields})
            ident = str(added["price"]["id"])
        if await xwalk.external_id(self.entity, self.target, change.entity_id) != ident:
            await claim(xwalk, self.entity, self.target, change.entity_id, ident)
        return ident

    async def _product(self, ref: str, linked: int, xwalk: Crosswalk) -> int:
        """The portal's id of product ``ref``: the crosswalked one while it is ours, else the
        one with our xmlId (relinked); DependencyPending while the portal has none."""
        # The product action's own lookups (iblock scope and all): one way to find a product.
        from stages.egress.bitrix24_product import ProductAction

        products = ProductAction(self.targets)
        row = await products.find_row({"id": linked})
        state = link_state(row, "xmlId", ref)
        if state is LinkState.OURS:
            return linked
        log.warning(describe(state, "product", ref, str(linked), row, "xmlId"))
        row = await products.find_row({"xmlId": ref})
        found = None if row is None else int(row["id"])
        if found is None:
            raise DependencyPending(
                f"price of a product: product {ref} is gone from Bitrix24 (deleted there); "
                "its next change from 1С creates it again, then the price follows"
            )
        await claim(xwalk, "product", self.target, ref, str(found))
        return found

    async def _price_type(self, ref: str, linked: int, xwalk: Crosswalk) -> int:
        """Like :meth:`_product`, for the price type ``ref``."""
        row = await first_row(self.client, "priceType", "priceTypes", {"id": linked})
        state = link_state(row, "xmlId", ref)
        if state is LinkState.OURS:
            return linked
        log.warning(describe(state, "price_type", ref, str(linked), row, "xmlId"))
        found = await first_row(self.client, "priceType", "priceTypes", {"xmlId": ref})
        if found is None:
            raise DependencyPending(
                f"price by a price type: price type {ref} is gone from Bitrix24 (deleted "
                "there); its next change from 1С creates it again, then the price follows"
            )
        await claim(xwalk, "price_type", self.target, ref, str(found["id"]))
        return int(found["id"])


class EmployeeAction(_MasterAction):
    """Links a 1С user (couriers are users) to their Bitrix24 user: found by ``XML_ID`` =
    the 1С GUID, else by e-mail; the crosswalk then maps the employee to ``user:<id>``.
    Nothing is written to the portal.

    A user with no Bitrix24 account raises :class:`DependencyPending`, not a permanent
    error: accounts are made by people (an invitation accepted), usually after 1С has the
    user, and the delayed path then links it without anyone replaying anything. Flows
    that need the courier (delivery tasks) wait behind the same crosswalk. If no account
    appears within the retry budget the change reaches the DLQ saying what was looked up:
    invite the user (or set their XML_ID / e-mail), then replay it. Persons and employees
    (not users), deletions and users 1С marks inactive need no account: None.
    """

    entity: ClassVar[str] = "employee"

    def __init__(self, targets: Targets, *, key_field: str = USER_KEY_FIELD) -> None:
        super().__init__(targets)
        self.key_field = key_field

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Find and link the user; ``user:<id>``."""
        payload = change.payload
        if (
            is_echo(payload)
            or change.deleted
            or payload.get("kind") != "user"
            or payload.get("is_active") is False
        ):
            return None
        known = await xwalk.external_id(self.entity, self.target, change.entity_id)
        if known is not None:
            return known
        lookups = user_lookups(payload, self.key_field)
        for flt in lookups:
            users = await self.client.call("user.get", {"FILTER": {**flt, "ACTIVE": True}})
            if users:
                key = f"user:{int(users[0]['ID'])}"
                await xwalk.link(self.entity, self.target, change.entity_id, key)
                return key
        tried = ", ".join(f"{k}={v}" for flt in lookups for k, v in flt.items())
        raise DependencyPending(
            f"employee {change.entity_id} ({payload.get('name') or 'no name'}) has no active "
            f"Bitrix24 user (looked up {tried}): invite the user or set their "
            f"{self.key_field}/e-mail in Bitrix24, then replay the change"
        )
