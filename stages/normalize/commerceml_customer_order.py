"""CommerceML orders (``Документ`` of the exchange with a site, as connectors/commerceml/
orders.py publishes them on raw.onec.customer_order) -> canonical CustomerOrder. Pure; no
TOPICS: onec_customer_order.py claims the topic and hands ``"_source": "commerceml"`` here.

Ids: an order, buyer or item ``Ид`` that is a GUID is the 1С Ref_Key (1С created the object);
any other ``Ид`` (a site's own: ``36``, ``1#admin#admin``, ``ORDER_DELIVERY``) is the id of an
object born at the site, so its canonical id is derived from it. The buyer's name and tax
numbers in the order are not turned into a counterparty version: that would overwrite the
1С catalog's richer record with a few fields.

Text: 1С and sites pretty-print long values over several indented lines. Names and numbers
become one line; the comment (free text the buyer typed) keeps its line breaks but loses
the indentation and blank lines. The buyer's comment is ``<Комментарий>``; some sites send
it only as a requisite (``Комментарий``, ``Комментарий покупателя``/``клиента``). The
currency is stored as its ISO code (commerceml_currency.py), not 1С's ``руб``.

:func:`answer_versions` reads 1С's answers to the instant orders and returns the middleware
exported through the exchange (``raw.onec.exchange_result``, claimed by commerceml_result.py).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from mmstream.models.base import Canonical, derived_id
from mmstream.models.customer_order import CustomerOrder
from mmstream.models.instant_order import InstantOrder
from mmstream.models.lines import MONEY_SCALE, GoodsLine
from mmstream.models.return_ import Return
from stages.normalize.commerceml_currency import iso_currency
from stages.normalize.oddities import Unnormalizable, decimal, onec_datetime, text
from stages.normalize.registry import Context

SOURCE = "commerceml"
BUYER_ROLE = "покупатель"
_COMMENT_REQUISITES = (
    "Комментарий",
    "Комментарий покупателя",
    "Комментарий клиента",
    "Комментарии",
)


def one_line(value: Any) -> str:
    """Every run of whitespace (line breaks and XML indentation included) as one space."""
    return " ".join(text(value).split())


def free_text(value: Any) -> str:
    """Free text without the XML indentation: each line stripped and its inner runs of spaces
    collapsed, blank lines dropped, the remaining line breaks kept."""
    lines = (" ".join(line.split()) for line in text(value).splitlines())
    return "\n".join(line for line in lines if line)


def canonical_id(entity: str, raw: str) -> tuple[UUID, dict[str, str]]:
    """(canonical id, external_ids) of a CommerceML ``Ид``: a GUID is 1С's own id."""
    try:
        guid = UUID(raw)
    except ValueError:
        return derived_id(entity, SOURCE, raw), {SOURCE: raw}
    if guid.int == 0:
        raise Unnormalizable(f"{entity} id: the empty GUID is not an object")
    return guid, {"onec": str(guid)}


def requisites(value: Any) -> dict[str, str]:
    """ЗначенияРеквизитов ``[{"name", "values"}]`` -> name -> first value (case kept)."""
    if value in (None, "", []):
        return {}
    if not isinstance(value, list):
        raise Unnormalizable("requisites: expected a list")
    out: dict[str, str] = {}
    for item in value:
        if not isinstance(item, dict):
            raise Unnormalizable("requisites: an entry must be an object")
        values = item.get("values") or []
        if not isinstance(values, list):  # the bridge writes a list; anything else is not ours
            raise Unnormalizable(
                f"requisites: values of {text(item.get('name'))[:40]!r} must be a list"
            )
        out.setdefault(text(item.get("name")), text(values[0]) if values else "")
    return out


def _moment(day: Any, time: Any, ctx: Context) -> Any:
    day, time = text(day), text(time)
    if not day:
        return None
    stamp = day if "T" in day else f"{day}T{time or '00:00:00'}"
    return onec_datetime(stamp, ctx.onec_tz, "date")


def _buyer(counterparties: Any) -> UUID | None:
    if counterparties in (None, "", []):
        return None
    if not isinstance(counterparties, list) or not all(isinstance(c, dict) for c in counterparties):
        raise Unnormalizable("counterparties: expected a list of objects")
    buyers = [c for c in counterparties if text(c.get("role")).casefold() == BUYER_ROLE]
    # One counterparty without a role is the buyer; several without one say nothing.
    chosen = buyers or (counterparties if len(counterparties) == 1 else [])
    if len(chosen) != 1 or not text(chosen[0].get("id")):
        return None
    return canonical_id("counterparty", text(chosen[0].get("id")))[0]


def _line(index: int, item: Any) -> GoodsLine:
    if not isinstance(item, dict):
        raise Unnormalizable(f"items.{index}: a line must be an object")
    product = text(item.get("product_id"))
    characteristic = text(item.get("characteristic_id"))
    return GoodsLine(
        section="Товары",
        line_number=index + 1,
        product_id=canonical_id("product", product)[0] if product else None,
        characteristic_id=canonical_id("characteristic", characteristic)[0]
        if characteristic
        else None,
        content=one_line(item.get("name")),
        quantity=decimal(item.get("quantity"), f"items.{index}.quantity"),
        price=decimal(item.get("price"), f"items.{index}.price"),
        amount=decimal(item.get("amount"), f"items.{index}.amount", MONEY_SCALE),
    )


def to_order(doc: dict[str, Any], ctx: Context) -> CustomerOrder:
    """One CommerceML order record -> its canonical version (Unnormalizable names the field)."""
    raw_id, version = text(doc.get("id")), text(doc.get("version"))
    if not raw_id:
        raise Unnormalizable("id: a CommerceML order without Ид")
    if not version:
        raise Unnormalizable("version: missing")
    order_id, external = canonical_id("customer_order", raw_id)
    deleted = doc.get("deleted") is True
    moment = _moment(doc.get("date"), doc.get("time"), ctx)
    if moment is None and not deleted:
        raise Unnormalizable("date: a CommerceML order without Дата")
    req = requisites(doc.get("requisites"))
    items = doc.get("items") or []
    if not isinstance(items, list):
        raise Unnormalizable("items: expected a list")
    return CustomerOrder(
        id=order_id,
        source=SOURCE,
        version=version,
        deleted=deleted,
        external_ids=external,
        # The site numbers its own orders; 1С's number, when sent back, is the document's.
        number=one_line(req.get("Номер по 1С") or doc.get("number")),
        date=moment,
        posted=req.get("Проведен", "").casefold() == "true",
        amount=decimal(doc.get("amount"), "amount", MONEY_SCALE),
        currency=iso_currency(doc.get("currency"), "currency"),
        comment=free_text(doc.get("comment")) or _requisite_comment(req),
        operation=one_line(doc.get("operation")),
        counterparty_id=_buyer(doc.get("counterparties")),
        status=one_line(req.get("Статус заказа", "")),
        lines=tuple(_line(i, item) for i, item in enumerate(items)),
    )


def _requisite_comment(req: dict[str, str]) -> str:
    folded = {name.casefold(): value for name, value in req.items()}
    for name in _COMMENT_REQUISITES:
        if folded.get(name.casefold()):
            return free_text(folded[name.casefold()])
    return ""


# -- 1С's answers to the documents the middleware exported (raw.onec.exchange_result) -------

#: Entities the middleware exports through the exchange (stages/egress/commerceml_orders.py).
EXPORTED = ("instant_order", "return")


def answer_versions(doc: dict[str, Any], ctx: Context) -> list[Canonical]:
    """1С's document about an instant order or return the middleware exported -> 1С's
    version of what it made of it, then the middleware's status.

    1С names its own document by the requisites it adds when it sends a site's order back
    (``Номер по 1С``, ``Дата по 1С``, ``Проведен``, ``ПометкаУдаления``); ``Номер`` and ``Ид``
    are ours, echoed. Status: ``recorded`` once 1С sends the document back, ``cancelled``
    when 1С marked it for deletion. The versions are named by the document's content hash,
    so the same answer sent again is a duplicate, not a change."""
    entity, version = text(doc.get("entity")), text(doc.get("version"))
    if entity not in EXPORTED:
        raise Unnormalizable(f"entity: no answers of {entity[:40]!r} are expected")
    if not version:
        raise Unnormalizable("version: missing")
    try:
        ident = UUID(text(doc.get("id")))
    except ValueError:
        raise Unnormalizable(f"id: not a canonical id: {text(doc.get('id'))[:60]!r}") from None
    req = requisites(doc.get("requisites"))
    number = one_line(req.get("Номер по 1С", ""))
    posted = req.get("Проведен", "").casefold() == "true"
    status = "cancelled" if doc.get("deleted") is True else "recorded"
    onec: Canonical
    if entity == "instant_order":
        onec = InstantOrder(
            id=ident, source=SOURCE, version=version, onec_number=number, onec_posted=posted
        )
        state: type[InstantOrder] | type[Return] = InstantOrder
    else:
        # 1С owns the return's document: what its answer tells of it. An answer without
        # goods (1С sends only the requisites of a status change) leaves the lines empty,
        # as they were: a return started by a courier has no 1С lines before 1С's answer.
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise Unnormalizable("items: expected a list")
        onec = Return(
            id=ident,
            source=SOURCE,
            version=version,
            number=number,
            date=_moment(req.get("Дата по 1С"), None, ctx),
            posted=posted,
            amount=decimal(doc.get("amount"), "amount", MONEY_SCALE),
            currency=iso_currency(doc.get("currency"), "currency"),
            operation=one_line(doc.get("operation")),
            counterparty_id=_buyer(doc.get("counterparties")),
            lines=tuple(_line(i, item) for i, item in enumerate(items)),
        )
        state = Return
    return [
        onec,
        state(id=ident, source="middleware", version=f"{version}:{status}", status=status),
    ]
