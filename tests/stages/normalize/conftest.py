"""Real captured payloads (../shared/fixtures) as the normalizer tests read them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from connectors.commerceml.document import records as commerceml_records
from stages.normalize.registry import Context

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures"


def _json(path: str):
    return json.loads((FIXTURES / path).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def commerceml_offer_records() -> dict[str, list[dict]]:
    """The real УТ offers.xml parsed by the bridge's CommerceML reader: entity -> payloads."""
    out: dict[str, list[dict]] = {}
    with (FIXTURES / "commerceml/irpsv_real-1c-ut101_offers.xml").open("rb") as stream:
        for record in commerceml_records(stream):
            out.setdefault(record.entity, []).append(record.payload)
    return out


@pytest.fixture(scope="session")
def bitrix24_contact_add() -> dict:
    """A real batch crm.contact.add answer (the new id is a number here, not a string)."""
    return _json("bitrix24_rest/crm_contact_add_batch.json")


@pytest.fixture(scope="session")
def onec_catalog_item() -> dict:
    """A real 1С catalog item (БП 3.0 Catalog_Номенклатура over standard OData)."""
    return _json("onec_odata/bp30_Catalog_Nomenklatura.json")["value"][0]


@pytest.fixture(scope="session")
def onec_sale_document() -> dict:
    """A real 1С document (РеализацияТоваровУслуг) whose references name a counterparty,
    an organization, a warehouse and a user."""
    return _json("onec_odata/bp30_Document_RealizatsiyaTovarovUslug.json")["value"][0]


@pytest.fixture(scope="session")
def commerceml_order_records() -> list[dict]:
    """1С's published sample orders.xml parsed by the bridge's CommerceML reader."""
    with (FIXTURES / "commerceml/irpsv_off-doc-1c_orders.xml").open("rb") as stream:
        return [record.payload for record in commerceml_records(stream)]


# --- 1С accounting documents: real captures, and records built in the same OData shape
# (empty GUIDs, empty dates, string LineNumber, composite X + X_Type) for the objects and
# configurations no capture covers (УТ 11 ЗаказКлиента, УТ 10.3 ЗаказПокупателя, ПКО, РКО,
# АвансовыйОтчет).

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"


@pytest.fixture
def ctx() -> Context:
    """The default normalizer context: 1С and the portal in Europe/Moscow."""
    return Context()


@pytest.fixture
def bp30_shipments() -> list[dict]:
    """Both real БП 3.0 Document_РеализацияТоваровУслуг records (goods; services)."""
    return _json("onec_odata/bp30_Document_RealizatsiyaTovarovUslug.json")["value"]


@pytest.fixture
def commerceml_orders() -> list[dict]:
    """1С's published sample orders.xml as the bridge publishes it (JSON record values)."""
    with (FIXTURES / "commerceml/irpsv_off-doc-1c_orders.xml").open("rb") as stream:
        return [
            json.loads(r.value())
            for r in commerceml_records(stream)
            if r.entity == "customer_order"
        ]


def _document(ref: str, number: str, **extra) -> dict:
    return copy.deepcopy(
        {
            "Ref_Key": ref,
            "DataVersion": "AAAAAQAAAAA=",
            "DeletionMark": False,
            "Number": number,
            "Date": "2024-03-05T09:15:00",
            "Posted": True,
            "Организация_Key": "87fa6cc2-e901-11ea-8591-000c29b45b09",
            "Комментарий": "",
            "Ответственный_Key": EMPTY_GUID,
            **extra,
        }
    )


@pytest.fixture
def ut11_order() -> dict:
    """A УТ 11 Document_ЗаказКлиента (lines out of order, one cancelled, a VAT reference)."""
    return _document(
        "5f0c1a10-0000-11ee-8000-000c29b45b09",
        "УТ-000123",
        ХозяйственнаяОперация="РеализацияКлиенту",
        Статус="КОтгрузке",
        Партнер_Key="11111111-0000-11ee-8000-000c29b45b09",
        Контрагент_Key="22222222-0000-11ee-8000-000c29b45b09",
        Соглашение_Key=EMPTY_GUID,
        Договор_Key=EMPTY_GUID,
        Склад_Key="f40235d3-d84c-11ea-8133-0050569f62a1",
        Валюта_Key="a192de9a-d84c-11ea-8133-0050569f62a1",
        СуммаДокумента=1234.5,
        ЦенаВключаетНДС=True,
        Менеджер_Key="10f78d15-dfe4-11eb-b4ad-000c29b45b09",
        ЖелаемаяДатаОтгрузки="2024-03-06T00:00:00",
        АдресДоставки="г. Москва, ул. Тверская, д. 1",
        Товары=[
            {
                "Ref_Key": "5f0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "2",
                "Номенклатура_Key": "2d4fe756-48a4-11ec-ad72-000c29b45b09",
                "Характеристика_Key": EMPTY_GUID,
                "Упаковка_Key": EMPTY_GUID,
                "КоличествоУпаковок": 1,
                "Количество": 1,
                "Цена": 234.5,
                "Сумма": 234.5,
                "СтавкаНДС_Key": "c3a0e2f0-0000-11ee-8000-000c29b45b09",
                "СуммаНДС": 39.08,
                "Склад_Key": EMPTY_GUID,
                "Отменено": True,
            },
            {
                "Ref_Key": "5f0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "1",
                "Номенклатура_Key": "2d4fe75f-48a4-11ec-ad72-000c29b45b09",
                "Характеристика_Key": "33333333-0000-11ee-8000-000c29b45b09",
                "Упаковка_Key": EMPTY_GUID,
                "КоличествоУпаковок": 2,
                "Количество": "2",
                "Цена": "500",
                "Сумма": "1000",
                "СтавкаНДС": "НДС20",
                "СуммаНДС": "166.67",
                "Склад_Key": "f40235d4-d84c-11ea-8133-0050569f62a1",
                "Отменено": False,
            },
        ],
    )


@pytest.fixture
def ut103_order() -> dict:
    """A УТ 10.3 Document_ЗаказПокупателя (composite СкладГруппа, a Услуги line)."""
    return _document(
        "6a0c1a10-0000-11ee-8000-000c29b45b09",
        "ТД000045",
        ВидОперации="ЗаказНаПродажу",
        Контрагент_Key="22222222-0000-11ee-8000-000c29b45b09",
        ДоговорКонтрагента_Key="44444444-0000-11ee-8000-000c29b45b09",
        СкладГруппа="f40235d3-d84c-11ea-8133-0050569f62a1",
        СкладГруппа_Type="StandardODATA.Catalog_Склады",
        ВалютаДокумента_Key="a192de9a-d84c-11ea-8133-0050569f62a1",
        СуммаДокумента=118,
        СуммаВключаетНДС=True,
        ДатаОтгрузки=EMPTY_DATE,
        ДокументОснование="",
        ДокументОснование_Type="StandardODATA.Undefined",
        Ответственный_Key="10f78d15-dfe4-11eb-b4ad-000c29b45b09",
        Товары=[],
        Услуги=[
            {
                "Ref_Key": "6a0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "1",
                "Номенклатура_Key": "f02ce7b6-e3b3-11eb-b4ad-000c29b45b09",
                "Содержание": "Доставка до подъезда",
                "Количество": 1,
                "Цена": 118,
                "Сумма": 118,
                "СтавкаНДС": "НДС18_118",
                "СуммаНДС": 18,
            }
        ],
    )


@pytest.fixture
def ut11_cash_receipt() -> dict:
    """A УТ 11 ПриходныйКассовыйОрдер: a courier hands in a customer's payment for an order."""
    return _document(
        "7b0c1a10-0000-11ee-8000-000c29b45b09",
        "0000-000077",
        ХозяйственнаяОперация="ПоступлениеОплатыОтКлиента",
        Касса_Key="55555555-0000-11ee-8000-000c29b45b09",
        Валюта_Key="a192de9a-d84c-11ea-8133-0050569f62a1",
        Контрагент_Key="22222222-0000-11ee-8000-000c29b45b09",
        ПодотчетноеЛицо_Key="66666666-0000-11ee-8000-000c29b45b09",
        СуммаДокумента=1234.5,
        ПринятоОт="Петров Пётр (курьер)",
        Основание="Оплата заказа",
        ДокументОснование="5f0c1a10-0000-11ee-8000-000c29b45b09",
        ДокументОснование_Type="StandardODATA.Document_ЗаказКлиента",
        РасшифровкаПлатежа=[
            {
                "Ref_Key": "7b0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "1",
                "Партнер_Key": "11111111-0000-11ee-8000-000c29b45b09",
                "Заказ": "8b9660f6-6332-11ec-ad72-000c29b45b09",
                "Заказ_Type": "StandardODATA.Document_РеализацияТоваровУслуг",
                "Договор_Key": EMPTY_GUID,
                "Сумма": 1234.5,
                "СуммаВзаиморасчетов": 1234.5,
            }
        ],
    )


@pytest.fixture
def ut103_cash_receipt() -> dict:
    """A УТ 10.3 ПКО: an accountable person returns an advance (composite Контрагент)."""
    return _document(
        "7c0c1a10-0000-11ee-8000-000c29b45b09",
        "ТД000010",
        ВидОперации="ПриемВозвратаОтПодотчетника",
        Касса_Key="55555555-0000-11ee-8000-000c29b45b09",
        ВалютаДокумента_Key="a192de9a-d84c-11ea-8133-0050569f62a1",
        Контрагент="66666666-0000-11ee-8000-000c29b45b09",
        Контрагент_Type="StandardODATA.Catalog_ФизическиеЛица",
        ДоговорКонтрагента_Key=EMPTY_GUID,
        СуммаДокумента="500.00",
        ПринятоОт="Петров П.П.",
        ДокументОснование="",
        ДокументОснование_Type="StandardODATA.Undefined",
        РасшифровкаПлатежа=[],
    )


@pytest.fixture
def ut103_cash_expense() -> dict:
    """A УТ 10.3 РасходныйКассовыйОрдер to a counterparty, two lines for one order."""
    return _document(
        "8d0c1a10-0000-11ee-8000-000c29b45b09",
        "ТД000011",
        ВидОперации="ВозвратДенежныхСредствПокупателю",
        Касса_Key="55555555-0000-11ee-8000-000c29b45b09",
        ВалютаДокумента_Key="a192de9a-d84c-11ea-8133-0050569f62a1",
        Контрагент="22222222-0000-11ee-8000-000c29b45b09",
        Контрагент_Type="StandardODATA.Catalog_Контрагенты",
        ДоговорКонтрагента_Key="44444444-0000-11ee-8000-000c29b45b09",
        СуммаДокумента=3000,
        Выдать="Сидорову С.С.",
        Основание="Возврат предоплаты",
        ДокументОснование="",
        ДокументОснование_Type="StandardODATA.Undefined",
        РасшифровкаПлатежа=[
            {
                "Ref_Key": "8d0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "1",
                "ДоговорКонтрагента_Key": "44444444-0000-11ee-8000-000c29b45b09",
                "Сделка": "6a0c1a10-0000-11ee-8000-000c29b45b09",
                "Сделка_Type": "StandardODATA.Document_ЗаказПокупателя",
                "СуммаПлатежа": 1000,
            },
            {
                "Ref_Key": "8d0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "2",
                "ДоговорКонтрагента_Key": "44444444-0000-11ee-8000-000c29b45b09",
                "Сделка": "6a0c1a10-0000-11ee-8000-000c29b45b09",
                "Сделка_Type": "StandardODATA.Document_ЗаказПокупателя",
                "СуммаПлатежа": "2000,00",
            },
        ],
    )


@pytest.fixture
def ut103_advance_report() -> dict:
    """A УТ 10.3 АвансовыйОтчет of a courier: goods, other expenses, the advance, a supplier."""
    return _document(
        "9e0c1a10-0000-11ee-8000-000c29b45b09",
        "ТД000003",
        ФизЛицо_Key="66666666-0000-11ee-8000-000c29b45b09",
        ВалютаДокумента_Key="a192de9a-d84c-11ea-8133-0050569f62a1",
        СуммаДокумента=1750.25,
        СуммаВключаетНДС=True,
        НазначениеАванса="ГСМ и парковка",
        ВыданныеАвансы=[
            {
                "Ref_Key": "9e0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "1",
                "ДокументАванса": "8d0c1a10-0000-11ee-8000-000c29b45b09",
                "ДокументАванса_Type": "StandardODATA.Document_РасходныйКассовыйОрдер",
                "Сумма": 3000,
            }
        ],
        Товары=[
            {
                "Ref_Key": "9e0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "1",
                "Номенклатура_Key": "2d4fe75f-48a4-11ec-ad72-000c29b45b09",
                "ЕдиницаИзмерения_Key": "f40235d5-d84c-11ea-8133-0050569f62a1",
                "Количество": 40.5,
                "Цена": 30.5,
                "Сумма": 1235.25,
                "СтавкаНДС": "НДС20",
                "СуммаНДС": 205.88,
                "ДатаВходящегоДокумента": EMPTY_DATE,
            }
        ],
        Прочее=[
            {
                "Ref_Key": "9e0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "1",
                "Содержание": "Парковка у склада",
                "Сумма": 15,
                "СтавкаНДС": "БезНДС",
                "СуммаНДС": 0,
            }
        ],
        ОплатаПоставщикам=[
            {
                "Ref_Key": "9e0c1a10-0000-11ee-8000-000c29b45b09",
                "LineNumber": "1",
                "Контрагент_Key": "22222222-0000-11ee-8000-000c29b45b09",
                "ДоговорКонтрагента_Key": EMPTY_GUID,
                "СуммаПлатежа": 500,
            }
        ],
    )


@pytest.fixture(scope="session")
def bitrix24_tasks() -> list[dict]:
    """Real tasks.task.list rows over both pages (the second answered through ``batch``):
    string ids and status codes, ``"group": []`` where an object is expected."""
    pages = _json("bitrix24_rest/get_all_tasks.json")
    first = pages[0]["result"]["tasks"]
    rest = [t for cmd in pages[1]["result"]["result"].values() for t in cmd["tasks"]]
    return first + rest


@pytest.fixture(scope="session")
def bitrix24_items() -> list[dict]:
    """Real crm.item.list rows: numeric ids, Cyrillic titles, a UF date with an offset."""
    return _json("bitrix24_rest/crm_item_list.json")["result"]["items"]


@pytest.fixture(scope="session")
def bitrix24_item_added() -> dict:
    """A real crm.item.add answer's item (smart process 133, empty xmlId, a title ending in
    a newline)."""
    return _json("bitrix24_rest/crm_item_add.json")["result"]["result"]["order0000000000"]["item"]


@pytest.fixture(scope="session")
def bitrix24_deal_stub() -> dict:
    """The one record a real crm.deal.get batch answered (``{"ID": "35943"}``: a string id and
    nothing else)."""
    result = _json("bitrix24_rest/crm_get_batch_mix_success_and_errors.json")["result"]["result"]
    return result["35943"]
