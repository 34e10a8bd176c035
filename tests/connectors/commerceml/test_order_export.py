"""The documents the middleware exports for 1С's ``sale&mode=query`` (pure): the
``Документ`` of a courier's instant order and return, as CommerceML 2.08 orders them, the
answer document 1С reads (windows-1251, declared), read back with the project's own parser;
and 1С's answer to such a document, normalized to the instant order / return versions."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from connectors.commerceml import document
from connectors.commerceml.orders import (
    ANSWER_TOPIC,
    RETURN_OPERATION,
    ExportDocument,
    ExportLine,
    ExportParty,
    answer_record,
    export_element,
    export_fragment,
    orders_document,
)
from mmstream.models.instant_order import InstantOrder
from mmstream.models.return_ import Return
from stages.egress.commerceml_orders import (
    document_amount,
    exchange_currency,
    exchange_document,
)
from stages.egress.courier_documents import goods_lines, instant_order_body, return_body
from stages.normalize import commerceml_result
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import Context, normalizers

MSK = ZoneInfo("Europe/Moscow")
ORDER_ID = "0f6b1d2c-8a3e-4c5f-9b7a-1e2d3c4b5a69"
RETURN_ID = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
CUSTOMER = "87fa6cc2-e901-11ea-8591-000c29b45b09"
PRODUCT = "5d1b6a3e-2f4c-11ef-8a6b-000c29b45b09"
OTHER = "6e2c7b4f-3a5d-11ef-8a6b-000c29b45b09"
NOW = datetime(2026, 12, 7, 12, 0, 0)
# CommerceML 2.08: the children of a Документ, in the schema's sequence.
DOCUMENT_ORDER = [
    "Ид",
    "Номер",
    "Дата",
    "ХозОперация",
    "Роль",
    "Валюта",
    "Курс",
    "Сумма",
    "Контрагенты",
    "Время",
    "СрокПлатежа",
    "Комментарий",
    "Налоги",
    "Скидки",
    "Товары",
    "ЗначенияРеквизитов",
]
ITEM_ORDER = [
    "Ид",
    "ИдКаталога",
    "Наименование",
    "БазоваяЕдиница",
    "ЗначенияРеквизитов",
    "ЦенаЗаЕдиницу",
    "Количество",
    "Сумма",
]

PARTY = ExportParty(CUSTOMER, 'ООО "Ромашка"', inn="7701234567", kpp="770101001")
LINES = (
    ExportLine(PRODUCT, "Клавиатура", Decimal("250"), Decimal("2"), Decimal("500")),
    ExportLine(OTHER, "Мышь ✓", Decimal("10.5"), Decimal("1.5"), Decimal("15.75")),
)
NAMES = {PRODUCT: "Клавиатура", OTHER: "Мышь ✓"}
# The deal's rows as courier_documents maps them (Bitrix24 product 7, 8 -> 1С GUIDs).
ROWS = [
    {"PRODUCT_ID": 7, "PRICE": 250, "QUANTITY": 2},
    {"PRODUCT_ID": 8, "PRICE": "10.5", "QUANTITY": "1.5"},
]
GOODS = goods_lines(ROWS, {7: PRODUCT, 8: OTHER})


def order_payload(**fields) -> dict:
    return {
        "id": ORDER_ID,
        "stage": "C3:WON",
        "status": "new",
        "currency": "RUB",
        "amount": "515.75",
        "external_ids": {"bitrix24": "deal:42"},
        "created_at": "2026-12-07T08:00:00+00:00",
        "closed_at": "2026-12-07T09:30:05+00:00",
        "comment": "Позвонить\nзаранее",
        "delivery_address": "Москва, Тверская 1",
        **fields,
    }


def order_document(payload: dict | None = None, names: dict | None = None) -> ExportDocument:
    """The instant order's document as InstantOrderToExchange builds it: the HTTP service's
    body (courier_documents), then the exchange's document."""
    body = instant_order_body(
        payload or order_payload(),
        customer=CUSTOMER,
        lines=GOODS,
        document_type="order",
        tz=MSK,
        post=True,
    )
    return exchange_document(
        body,
        operation="Заказ товара",
        deal=42,
        party=PARTY,
        names=NAMES if names is None else names,
    )


def return_payload(**fields) -> dict:
    return {
        "id": RETURN_ID,
        "courier_stage": "C5:WON",
        "status": "new",
        "courier_currency": "USD",
        "external_ids": {"bitrix24": "deal:43"},
        "reported_at": "2026-12-07T21:10:05+00:00",
        **fields,
    }


def in_order(tags: list[str], schema: list[str]) -> bool:
    positions = [schema.index(t) for t in tags]
    return positions == sorted(positions)


def parsed(fragments: list[str]):
    """The query answer as bytes, and the order records the project's parser reads from it."""
    body, broken = orders_document(fragments, NOW)
    assert broken == []
    summary = document.check(io.BytesIO(body))
    assert summary.entries["order"] == len(fragments)
    return body, list(document.records(io.BytesIO(body)))


def test_an_instant_order_is_a_2_08_document_1c_reads():
    doc = order_document()
    elem = export_element(doc)
    tags = [child.tag for child in elem]
    assert in_order(tags, DOCUMENT_ORDER), tags
    assert all(in_order([c.tag for c in item], ITEM_ORDER) for item in elem.iter("Товар"))
    body, (record,) = parsed([export_fragment(doc)])
    assert body.startswith(b'<?xml version="1.0" encoding="windows-1251"?>\n<')
    root = ET.fromstring(body)
    assert root.tag == "КоммерческаяИнформация" and root.get("ВерсияСхемы") == "2.08"
    order = record.payload
    assert (record.entity, record.key) == ("customer_order", ORDER_ID)
    assert order["number"] == "42" and order["operation"] == "Заказ товара"
    assert order["role"] == "Продавец" and order["currency"] == "руб" and order["rate"] == "1"
    # 09:30:05 UTC closed -> 12:30:05 in Moscow, 1С's wall clock.
    assert (order["date"], order["time"]) == ("2026-12-07", "12:30:05")
    assert order["amount"] == "515.75" and order["comment"] == "Позвонить\nзаранее"
    assert order["counterparties"] == [
        {
            "id": CUSTOMER,
            "name": 'ООО "Ромашка"',
            "full_name": 'ООО "Ромашка"',
            "role": "Покупатель",
            "inn": "7701234567",
            "kpp": "770101001",
        }
    ]
    assert [
        (i["product_id"], i["name"], i["price"], i["quantity"], i["amount"]) for i in order["items"]
    ] == [
        (PRODUCT, "Клавиатура", "250.00", "2", "500.00"),
        (OTHER, "Мышь ✓", "10.50", "1.5", "15.75"),
    ]
    assert order["items"][0]["unit"]["code"] == "796"
    assert {"name": "Адрес доставки", "values": ["Москва, Тверская 1"]} in order["requisites"]


def test_a_return_is_a_return_of_goods_document():
    body = return_body(
        return_payload(),
        customer=CUSTOMER,
        lines=GOODS[:1],
        shipment="8b9660f6-6332-11ec-ad72-000c29b45b09",
        tz=MSK,
        post=True,
    )
    doc = exchange_document(
        body, operation=RETURN_OPERATION, deal=43, party=ExportParty(CUSTOMER, ""), names={}
    )
    _, (record,) = parsed([export_fragment(doc)])
    order = record.payload
    assert order["operation"] == RETURN_OPERATION == "Возврат товара"
    assert order["currency"] == "USD" and order["amount"] == "500.00"  # no courier amount
    assert (order["date"], order["time"]) == ("2026-12-08", "00:10:05")
    # A customer or product the middleware knows no name of is still named (the schema
    # requires a name; 1С finds both by Ид).
    assert order["counterparties"][0]["name"] == CUSTOMER
    assert order["items"][0]["name"] == PRODUCT
    assert {
        "name": "Документ основание",
        "values": ["8b9660f6-6332-11ec-ad72-000c29b45b09"],
    } in order["requisites"]


def test_the_same_document_is_the_same_text():
    """A retry queues the very same text: the queue sees no change and re-sends nothing."""
    first = export_fragment(order_document())
    again = export_fragment(order_document(dict(order_payload()), dict(NAMES)))
    changed = export_fragment(order_document(order_payload(comment="другое")))
    assert first == again != changed


def test_text_outside_windows_1251_survives_as_character_references():
    doc = ExportDocument(
        ORDER_ID,
        "1",
        NOW,
        "Заказ товара",
        "руб",
        Decimal(1),
        PARTY,
        LINES,
        comment="Курьер: 👍 ✓ €",
    )
    body, (record,) = parsed([export_fragment(doc)])
    body.decode("cp1251")  # the whole answer is windows-1251
    assert b"&#128077;" in body
    assert record.payload["comment"] == "Курьер: 👍 ✓ €"


def test_a_broken_queued_fragment_is_left_out_not_sent():
    good = export_fragment(order_document())
    body, broken = orders_document([good, "<Документ><Ид>", "<Товар/>"], NOW)
    assert broken == [1, 2]
    assert [d.findtext("Ид") for d in ET.fromstring(body)] == [ORDER_ID]


@pytest.mark.parametrize(
    "value,expected", [("RUB", "руб"), ("", "руб"), ("usd", "USD"), ("руб", "руб")]
)
def test_the_currency_is_named_as_the_exchange_names_it(value, expected):
    assert exchange_currency(value) == expected


def test_the_amount_is_the_courier_s_else_the_lines():
    assert document_amount("100.5", LINES) == Decimal("100.5")
    assert document_amount(None, LINES) == Decimal("515.75")
    assert document_amount("-1", LINES) == Decimal("515.75")


# -- 1С's answer to an exported document ---------------------------------------------------

ANSWER = f"""<?xml version="1.0" encoding="UTF-8"?>
<КоммерческаяИнформация ВерсияСхемы="2.08" ДатаФормирования="2026-12-07T13:00:00">
  <Документ><Ид>{{id}}</Ид><Номер>42</Номер><Дата>2026-12-07</Дата>
    <ХозОперация>{{operation}}</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта>
    <Курс>1</Курс><Сумма>500</Сумма>
    <Контрагенты><Контрагент><Ид>{CUSTOMER}</Ид><Наименование>Ромашка</Наименование>
      <Роль>Покупатель</Роль></Контрагент></Контрагенты>
    <Время>12:30:05</Время>
    <Товары><Товар><Ид>{PRODUCT}</Ид><Наименование>Клавиатура</Наименование>
      <ЦенаЗаЕдиницу>250</ЦенаЗаЕдиницу><Количество>2</Количество><Сумма>500</Сумма></Товар>
    </Товары>
    <ЗначенияРеквизитов>
      <ЗначениеРеквизита><Наименование>Номер по 1С</Наименование><Значение>ЗК-000777</Значение></ЗначениеРеквизита>
      <ЗначениеРеквизита><Наименование>Дата по 1С</Наименование><Значение>2026-12-07</Значение></ЗначениеРеквизита>
      <ЗначениеРеквизита><Наименование>ПометкаУдаления</Наименование><Значение>{{deleted}}</Значение></ЗначениеРеквизита>
      <ЗначениеРеквизита><Наименование>Проведен</Наименование><Значение>true</Значение></ЗначениеРеквизита>
      <ЗначениеРеквизита><Наименование>Статус заказа</Наименование><Значение>Открыт</Значение></ЗначениеРеквизита>
    </ЗначенияРеквизитов>
  </Документ>
</КоммерческаяИнформация>"""


def answer(
    entity: str, doc_id: str, operation: str = "Заказ товара", deleted: str = "false"
) -> dict:
    """1С's document parsed by the project's parser, as the bridge publishes it."""
    xml = ANSWER.format(id=doc_id, operation=operation, deleted=deleted).encode()
    (order,) = list(document.records(io.BytesIO(xml)))
    record = answer_record(order, entity)
    assert record.topic == ANSWER_TOPIC and record.key == doc_id
    assert record.version != order.version
    return record.payload


def test_the_answers_topic_is_normalized_here():
    assert normalizers()[ANSWER_TOPIC] is commerceml_result.normalize


def test_an_instant_order_answer_records_1c_number_and_posted():
    onec, middleware = commerceml_result.normalize(answer("instant_order", ORDER_ID), {}, Context())
    assert isinstance(onec, InstantOrder) and isinstance(middleware, InstantOrder)
    assert onec.id == middleware.id == UUID(ORDER_ID)
    assert onec.source == "commerceml" and onec.onec_number == "ЗК-000777" and onec.onec_posted
    assert middleware.source == "middleware" and middleware.status == "recorded"
    assert middleware.version == f"{onec.version}:recorded"


def test_a_return_answer_is_1c_document_of_the_return():
    onec, middleware = commerceml_result.normalize(
        answer("return", RETURN_ID, "Возврат товара"), {}, Context()
    )
    assert isinstance(onec, Return) and onec.source == "commerceml"
    assert onec.number == "ЗК-000777" and onec.posted is True
    assert onec.date == datetime(2026, 12, 7, tzinfo=MSK)
    assert onec.amount == Decimal("500.00") and onec.currency == "RUB"
    assert onec.counterparty_id == UUID(CUSTOMER) and onec.operation == "Возврат товара"
    assert [(line.product_id, line.quantity) for line in onec.lines] == [(UUID(PRODUCT), 2)]
    assert isinstance(middleware, Return) and middleware.status == "recorded"


def test_a_document_1c_marked_for_deletion_is_cancelled():
    _, middleware = commerceml_result.normalize(
        answer("instant_order", ORDER_ID, deleted="true"), {}, Context()
    )
    assert middleware.status == "cancelled"


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"entity": "customer_order"}, "entity"),
        ({"id": "36"}, "id: not a canonical id"),
        ({"version": ""}, "version"),
    ],
)
def test_an_answer_that_is_not_one_is_unnormalizable(change, reason):
    value = {**answer("instant_order", ORDER_ID), **change}
    with pytest.raises(Unnormalizable, match=reason):
        commerceml_result.normalize(value, {}, Context())
