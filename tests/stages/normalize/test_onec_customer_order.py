"""Customer orders: УТ 11 ЗаказКлиента, УТ 10.3 ЗаказПокупателя and the real CommerceML
sample orders, all on raw.onec.customer_order. A 1С order with a delivery address also
gives its delivery task."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from mmstream.models.base import derived_id
from mmstream.models.customer_order import CustomerOrder
from mmstream.models.delivery_task import DeliveryTask
from stages.normalize.derive_delivery_task import delivery_task_id
from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_customer_order import normalize
from stages.normalize.registry import Context, normalizers

MSK = ZoneInfo("Europe/Moscow")


def test_one_module_claims_the_topic_for_both_sources():
    assert normalizers()["raw.onec.customer_order"] is normalize


def test_ut11_order(ut11_order, ctx):
    doc, _task = normalize(ut11_order, {}, ctx)
    assert doc.id == UUID("5f0c1a10-0000-11ee-8000-000c29b45b09") and doc.source == "onec"
    assert (doc.number, doc.posted, doc.status) == ("УТ-000123", True, "КОтгрузке")
    assert doc.date == datetime(2024, 3, 5, 9, 15, tzinfo=MSK)
    assert doc.shipment_date == datetime(2024, 3, 6, tzinfo=MSK)
    assert doc.partner_id == UUID("11111111-0000-11ee-8000-000c29b45b09")
    assert doc.counterparty_id == UUID("22222222-0000-11ee-8000-000c29b45b09")
    assert doc.contract_id is None  # the empty GUID
    assert doc.currency_id == UUID("a192de9a-d84c-11ea-8133-0050569f62a1")
    assert doc.responsible_id == UUID("10f78d15-dfe4-11eb-b4ad-000c29b45b09")  # Менеджер
    assert doc.amount == Decimal("1234.5") and doc.amount_includes_vat is True
    assert doc.delivery_address == "г. Москва, ул. Тверская, д. 1"


def test_ut11_order_with_a_delivery_address_gives_its_delivery_task(ut11_order, ctx):
    order, task = normalize(ut11_order, {}, ctx)
    assert isinstance(order, CustomerOrder) and isinstance(task, DeliveryTask)
    assert task.id == delivery_task_id(order.id) and task.order_id == order.id
    assert (task.source, task.version, task.deleted) == ("onec", "order:AAAAAQAAAAA=", False)
    assert task.delivery_address == "г. Москва, ул. Тверская, д. 1"
    assert (task.number, task.amount_to_collect) == ("УТ-000123", Decimal("1234.5"))
    assert (task.counterparty_id, task.warehouse_id) == (order.counterparty_id, order.warehouse_id)
    assert task.planned_from == datetime(2024, 3, 6, tzinfo=MSK)  # the wanted shipment date
    assert task.status == "new"


def test_ut11_lines_in_line_number_order_with_vat_forms(ut11_order, ctx):
    doc, _task = normalize(ut11_order, {}, ctx)
    first, second = doc.lines
    assert (first.line_number, second.line_number) == (1, 2)
    assert first.characteristic_id == UUID("33333333-0000-11ee-8000-000c29b45b09")
    assert first.warehouse_id == UUID("f40235d4-d84c-11ea-8133-0050569f62a1")
    assert (first.quantity, first.amount, first.vat_percent) == (
        Decimal(2),
        Decimal(1000),
        Decimal(20),
    )
    # УТ 11.5: the rate is a СтавкиНДС reference; its percent is not in the record.
    assert second.vat_rate_id == UUID("c3a0e2f0-0000-11ee-8000-000c29b45b09")
    assert (second.vat_rate, second.vat_percent, second.cancelled) == ("", None, True)


def test_ut103_order(ut103_order, ctx):
    (doc,) = normalize(ut103_order, {}, ctx)
    assert doc.operation == "ЗаказНаПродажу" and doc.partner_id is None
    assert doc.warehouse_id == UUID("f40235d3-d84c-11ea-8133-0050569f62a1")  # СкладГруппа
    assert doc.contract_id == UUID("44444444-0000-11ee-8000-000c29b45b09")
    assert doc.shipment_date is None  # 0001-01-01T00:00:00
    (line,) = doc.lines
    assert (line.section, line.content) == ("Услуги", "Доставка до подъезда")
    assert (line.vat_rate, line.vat_percent) == ("НДС18_118", Decimal(18))


def test_order_without_an_address_gives_a_task_only_when_no_address_is_needed(ut103_order):
    """УТ 10.3 fixture: no АдресДоставки, the customer collects the order."""
    (order,) = normalize(ut103_order, {}, Context())
    assert order.delivery_address == ""
    order, task = normalize(ut103_order, {}, Context(delivery_needs_address=False))
    assert task.id == delivery_task_id(order.id) and task.delivery_address == ""
    assert (task.number, task.amount_to_collect) == ("ТД000045", Decimal(118))


def test_order_marked_for_deletion_deletes_its_task(ut11_order, ctx):
    order, task = normalize({**ut11_order, "DeletionMark": True}, {}, ctx)
    assert order.deleted and task.deleted and task.id == delivery_task_id(order.id)
    # A record saying only that the order vanished cannot tell whether it had a task.
    gone = {
        "Ref_Key": ut11_order["Ref_Key"],
        "DataVersion": "deleted:AAAAAQAAAAA=",
        "DeletionMark": True,
        "_deleted": True,
    }
    (order,) = normalize(gone, {}, ctx)
    assert isinstance(order, CustomerOrder) and order.deleted


def test_a_warehouse_group_of_another_type_is_not_a_warehouse(ut103_order, ctx):
    record = {**ut103_order, "СкладГруппа_Type": "StandardODATA.Catalog_СтруктурныеЕдиницы"}
    assert normalize(record, {}, ctx)[0].warehouse_id is None


def test_real_commerceml_orders(commerceml_orders, ctx):
    docs = [doc for record in commerceml_orders for doc in normalize(record, {}, ctx)]
    assert [d.external_ids for d in docs] == [
        {"commerceml": "36"},
        {"commerceml": "92"},
        {"commerceml": "93"},
    ]
    first = docs[0]
    assert first.id == derived_id("customer_order", "commerceml", "36")
    assert first.source == "commerceml" and len(first.version) == 64
    assert first.date == datetime(2007, 10, 30, 15, 19, 27, tzinfo=MSK)
    assert (first.amount, first.currency, first.operation) == (
        Decimal("6734.47"),
        "RUB",
        "Заказ товара",
    )
    assert first.status == "[N] Принят" and first.posted is False
    assert first.counterparty_id == derived_id("counterparty", "commerceml", "1#admin# admin")


def test_commerceml_lines_site_and_1c_products(commerceml_orders, ctx):
    (doc,) = normalize(commerceml_orders[0], {}, ctx)
    delivery, tv = doc.lines
    assert delivery.product_id == derived_id("product", "commerceml", "ORDER_DELIVERY")
    assert tv.product_id == UUID("dee6e19a-55bc-11d9-848a-00112f43529a")
    assert (tv.content, tv.price, tv.quantity, tv.amount) == (
        'Телевизор "JVC"',
        Decimal("6394.47"),
        Decimal("1.00"),
        Decimal("6394.47"),
    )
    assert sum(line.amount for line in doc.lines) == doc.amount


def test_commerceml_1c_number_and_posted_requisites(commerceml_orders, ctx):
    (doc,) = normalize(commerceml_orders[1], {}, ctx)
    assert (doc.number, doc.posted, doc.status, doc.deleted) == ("MM92", True, "Открыт", False)
    assert doc.lines == () and doc.counterparty_id is None


def test_commerceml_order_with_a_1c_guid_is_the_1c_document(commerceml_orders, ctx):
    guid = "5f0c1a10-0000-11ee-8000-000c29b45b09"
    (doc,) = normalize({**commerceml_orders[1], "id": guid, "deleted": True}, {}, ctx)
    assert doc.id == UUID(guid) and doc.external_ids == {"onec": guid} and doc.deleted is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": ""}, "version"),
        ({"id": ""}, "id"),
        ({"date": ""}, "date"),
        ({"date": "30.10.2007"}, "date"),
        ({"amount": "много"}, "amount"),
        ({"items": [{"product_id": "x", "quantity": "one"}]}, "items.0.quantity"),
        ({"id": "00000000-0000-0000-0000-000000000000"}, "customer_order id"),
    ],
)
def test_commerceml_rejections(commerceml_orders, ctx, change, field):
    with pytest.raises(Unnormalizable, match=field):
        normalize({**commerceml_orders[0], **change}, {}, ctx)


def test_1c_rejection_names_the_field(ut11_order, ctx):
    with pytest.raises(Unnormalizable, match="ЖелаемаяДатаОтгрузки"):
        normalize({**ut11_order, "ЖелаемаяДатаОтгрузки": "завтра"}, {}, ctx)
