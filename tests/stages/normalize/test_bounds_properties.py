"""Every value of every accepted source shape ends as an encodable entity or a DLQ reason.

One field at a time of a real (or real-shaped) record of each source — every 1С object the
bridge accepts, CommerceML products, offers and orders, the Bitrix24 entities — is replaced
by a hostile value, and the record goes through the bridge's validation, normalization and
the outbox relay's Avro encoding (bounds_harness). It must be rejected by the bridge,
dead-lettered with a reason, or published; never raise anything else (which, in the sink
or the relay, stops the worker: the review's 1e300 ВидыЦен and 1E+30 CommerceML quantity).

Two kinds of check per source family: a deterministic sweep (every field × every curated
poison value, tests/stages/normalize/bounds_harness.POISON) and a hypothesis property
(every field × arbitrary JSON values).
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.normalize.registry import Context
from tests.stages.normalize.bounds_harness import (
    DEAD_LETTERED,
    MORE_POISON,
    POISON,
    PUBLISHED,
    REJECTED,
    Case,
    mutated,
    nested,
    outcome,
    paths,
    sweep,
)
from tests.stages.normalize.test_bitrix24_company import company
from tests.stages.normalize.test_bitrix24_contact import contact
from tests.stages.normalize.test_bitrix24_deal import ctx as deal_ctx
from tests.stages.normalize.test_bitrix24_deal import deal
from tests.stages.normalize.test_bitrix24_item import DELIVERY, delivery
from tests.stages.normalize.test_bitrix24_item import ctx as item_ctx
from tests.stages.normalize.test_bitrix24_product import b24_product
from tests.stages.normalize.test_bitrix24_task import ctx as task_ctx
from tests.stages.normalize.test_bitrix24_task import ours
from tests.stages.normalize.test_commerceml_product import BASE as CML_PRODUCT
from tests.stages.normalize.test_onec_counterparty import (
    legal_entity_ut11,
    legal_entity_ut103,
    partner,
)
from tests.stages.normalize.test_onec_employee import user
from tests.stages.normalize.test_onec_organization import organization
from tests.stages.normalize.test_onec_price import ut11 as price_ut11
from tests.stages.normalize.test_onec_price import ut103 as price_ut103
from tests.stages.normalize.test_onec_product import fixture_record as nomenclature
from tests.stages.normalize.test_onec_return import ut11_return
from tests.stages.normalize.test_onec_warehouse import warehouse

REF = "2528e58f-e921-11ea-8591-000c29b45b09"
RUB = "a192de9a-d84c-11ea-8133-0050569f62a1"


@pytest.fixture
def onec_cases(
    ut11_order,
    ut103_order,
    ut11_cash_receipt,
    ut103_cash_receipt,
    ut103_cash_expense,
    ut103_advance_report,
    bp30_shipments,
) -> list[Case]:
    """A record of every 1С object the bridge accepts (connectors/onec/objects.py)."""
    price_type = {
        "Ref_Key": REF,
        "DataVersion": "AAAAAQAAAAA=",
        "DeletionMark": False,
        "Code": "000000001",
        "Description": "Розничная",
        "ВалютаЦены_Key": RUB,
        "ЦенаВключаетНДС": True,
        "СпособЗаданияЦены": "Вручную",
        "ИспользоватьПриПродаже": True,
        "Комментарий": "",
    }
    price_type_ut103 = {
        "Ref_Key": REF,
        "DataVersion": "AAAAAgAAAAA=",
        "DeletionMark": False,
        "Code": "00002",
        "Description": "Мелкооптовая",
        "ВалютаЦены_Key": RUB,
        "ЦенаВключаетНДС": False,
        "Рассчитывается": True,
        "БазовыйТипЦен_Key": REF,
        "ПроцентСкидкиНаценки": "-5.5",
    }
    person = {
        "Ref_Key": "5a0c1f0e-8c3e-11ee-9a51-3b1c2f6a7e10",
        "DataVersion": "AAAAAQ==",
        "DeletionMark": False,
        "Code": "0001",
        "Description": "Иванов Иван Иванович",
        "ДатаРождения": "1990-01-31T00:00:00",
        "ИНН": "667100000000",
        "_object": "ФизическиеЛица",
    }
    staff = {**user("10f78d15-dfe4-11eb-b4ad-000c29b45b09"), "_object": "Сотрудники"}
    return [
        Case("Номенклатура", nomenclature(), "raw.onec.product", onec_object="Номенклатура"),
        Case(
            "Контрагенты УТ 11",
            legal_entity_ut11(REF),
            "raw.onec.counterparty",
            onec_object="Контрагенты",
        ),
        Case(
            "Контрагенты УТ 10.3",
            legal_entity_ut103(REF),
            "raw.onec.counterparty",
            onec_object="Catalog_Контрагенты",
        ),
        Case("Партнеры", partner(), "raw.onec.counterparty", onec_object="Партнеры"),
        Case("Склады", warehouse(REF), "raw.onec.warehouse", onec_object="Склады"),
        Case("Организации", organization(REF), "raw.onec.organization", onec_object="Организации"),
        Case("ВидыЦен", price_type, "raw.onec.price_type", onec_object="ВидыЦен"),
        Case(
            "ТипыЦенНоменклатуры",
            price_type_ut103,
            "raw.onec.price_type",
            onec_object="ТипыЦенНоменклатуры",
        ),
        Case(
            "ЦеныНоменклатуры УТ 11", price_ut11(), "raw.onec.price", onec_object="ЦеныНоменклатуры"
        ),
        Case(
            "ЦеныНоменклатуры УТ 10.3",
            price_ut103(Цена=1250.5),
            "raw.onec.price",
            onec_object="InformationRegister_ЦеныНоменклатуры",
        ),
        Case(
            "Пользователи",
            user("10f78d15-dfe4-11eb-b4ad-000c29b45b09"),
            "raw.onec.employee",
            onec_object="Пользователи",
        ),
        Case("ФизическиеЛица", person, "raw.onec.employee", onec_object="ФизическиеЛица"),
        Case("Сотрудники", staff, "raw.onec.employee", onec_object="Сотрудники"),
        Case("ЗаказКлиента", ut11_order, "raw.onec.customer_order", onec_object="ЗаказКлиента"),
        Case(
            "ЗаказПокупателя", ut103_order, "raw.onec.customer_order", onec_object="ЗаказПокупателя"
        ),
        Case(
            "РеализацияТоваровУслуг (goods)",
            bp30_shipments[0],
            "raw.onec.shipment",
            onec_object="РеализацияТоваровУслуг",
        ),
        Case(
            "РеализацияТоваровУслуг (services)",
            bp30_shipments[1],
            "raw.onec.shipment",
            onec_object="РеализацияТоваровУслуг",
        ),
        Case(
            "ВозвратТоваровОтКлиента",
            ut11_return(),
            "raw.onec.return",
            onec_object="ВозвратТоваровОтКлиента",
        ),
        Case(
            "ВозвратТоваровОтПокупателя",
            {**ut11_return(), "_object": None},
            "raw.onec.return",
            onec_object="ВозвратТоваровОтПокупателя",
        ),
        Case(
            "ПриходныйКассовыйОрдер УТ 11",
            ut11_cash_receipt,
            "raw.onec.cash_receipt",
            onec_object="ПриходныйКассовыйОрдер",
        ),
        Case(
            "ПриходныйКассовыйОрдер УТ 10.3",
            ut103_cash_receipt,
            "raw.onec.cash_receipt",
            onec_object="ПриходныйКассовыйОрдер",
        ),
        Case(
            "РасходныйКассовыйОрдер",
            ut103_cash_expense,
            "raw.onec.cash_expense",
            onec_object="РасходныйКассовыйОрдер",
        ),
        Case(
            "АвансовыйОтчет",
            ut103_advance_report,
            "raw.onec.advance_report",
            onec_object="АвансовыйОтчет",
        ),
    ]


@pytest.fixture
def commerceml_cases(commerceml_offer_records, commerceml_orders) -> list[Case]:
    """CommerceML products, offers (prices) and orders as the bridge publishes them."""
    price = commerceml_offer_records["price"][0]
    return [
        Case("CommerceML product", dict(CML_PRODUCT), "raw.onec.product"),
        Case("CommerceML offer price", price, "raw.onec.price"),
        Case(
            "CommerceML offer price (price type by name)",
            {**price, "price_type_id": "розница", "price_type_name": "Розница"},
            "raw.onec.price",
        ),
        *[
            Case(f"CommerceML order {i}", order, "raw.onec.customer_order")
            for i, order in enumerate(commerceml_orders[:2])
        ],
    ]


@pytest.fixture
def bitrix24_cases(bitrix24_items, bitrix24_tasks) -> list[Case]:
    """The Bitrix24 entities the enrichment publishes, with courier funnels configured so
    deals, items and tasks become entities rather than nothing."""
    item_fields = {"delivered_at": "ufCrm11_1712074666"}
    return [
        Case("crm.company", company(), "raw.bitrix24.company"),
        Case("crm.contact", contact(), "raw.bitrix24.contact"),
        Case(
            "crm.deal (instant order)",
            deal(UF_CRM_MM_ADDRESS=["ул. Мира, 5"]),
            "raw.bitrix24.deal",
            deal_ctx(deal_fields={"delivery_address": "UF_CRM_MM_ADDRESS"}),
        ),
        Case("crm.deal (return)", deal(CATEGORY_ID="5"), "raw.bitrix24.deal", deal_ctx()),
        Case(
            "crm.item (delivery)",
            delivery(
                bitrix24_items[1], assignedById=5, stageId="DT180_3:SUCCESS", opportunity=150.5
            ),
            "raw.bitrix24.item",
            item_ctx(**DELIVERY, delivery_item_fields=item_fields),
        ),
        Case(
            "crm.item (return)",
            {**delivery(bitrix24_items[1]), "entityTypeId": 133, "opportunity": "100|RUB"},
            "raw.bitrix24.item",
            item_ctx(**DELIVERY),
        ),
        Case(
            "tasks.task",
            ours(bitrix24_tasks[4], responsibleId="17", closedDate="2024-05-21T18:00:00+05:00"),
            "raw.bitrix24.task",
            task_ctx(),
        ),
        Case("catalog.product", b24_product(), "raw.bitrix24.product"),
    ]


# --- the seeds are what they claim: each is published as it is -------------------------


@pytest.mark.parametrize("family", ["onec_cases", "commerceml_cases", "bitrix24_cases"])
def test_every_seed_is_published_unchanged(family, request):
    for case in request.getfixturevalue(family):
        end, detail = outcome(case, case.seed)
        assert end == PUBLISHED and detail, f"{case.label}: {end}: {detail}"


# --- deterministic sweep: every field x every curated poison value ----------------------


def _sweep_family(cases: list[Case]) -> dict[str, int]:
    totals = {REJECTED: 0, DEAD_LETTERED: 0, PUBLISHED: 0}
    for case in cases:
        for end, n in sweep(case).items():
            totals[end] += n
    return totals


@pytest.mark.parametrize("family", ["onec_cases", "commerceml_cases", "bitrix24_cases"])
def test_every_field_with_every_poison_value_ends_published_or_with_a_reason(family, request):
    totals = _sweep_family(request.getfixturevalue(family))
    # Not vacuous: the poison reaches normalization and is refused there.
    assert totals[DEAD_LETTERED] > 100, totals
    assert totals[PUBLISHED] > 100, totals


# --- hypothesis: every field x arbitrary JSON --------------------------------------------

_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"-?[0-9]{1,40}([.,][0-9]{1,30})?([eE][+-]?[0-9]{1,12})?", fullmatch=True),
)
_SCALARS = st.one_of(
    _NUMBERS,
    _NUMBERS,
    _NUMBERS,  # weighted: most fields that break a stage are numbers
    st.none(),
    st.booleans(),
    st.text(max_size=30),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=10),  # surrogates, NUL
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.uuids().map(str),
    st.sampled_from(POISON[:-1] + MORE_POISON),
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
) | st.integers(min_value=1, max_value=300).map(nested)
"""Arbitrary JSON (as the bridge's json.loads reads it: NaN and Infinity included)."""


def _check_case(case: Case, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(where=st.sampled_from(list(paths(case.seed))), value=JSON_VALUES)
    def property_(where, value):
        end, detail = outcome(case, mutated(case.seed, where, value))
        assert end in (REJECTED, DEAD_LETTERED, PUBLISHED)
        if end == DEAD_LETTERED:
            assert detail.strip()

    property_()


def _check_family(cases: list[Case]) -> None:
    # Case by case, so each shape's few numeric fields get their share of the examples.
    for case in cases:
        _check_case(case, examples=60)


@pytest.mark.parametrize("family", ["onec_cases", "commerceml_cases", "bitrix24_cases"])
def test_arbitrary_json_in_any_field_ends_published_or_with_a_reason(family, request):
    _check_family(request.getfixturevalue(family))


# --- the review's findings, each at normalization with its reason ------------------------


def test_review_price_type_markup_1e300_is_dead_lettered_naming_the_field(onec_cases):
    (case,) = [c for c in onec_cases if c.label == "ТипыЦенНоменклатуры"]
    end, reason = outcome(case, {**case.seed, "ПроцентСкидкиНаценки": 1e300})
    assert end == DEAD_LETTERED
    assert reason.startswith("ПроцентСкидкиНаценки: 1E+300 exceeds decimal(20,4)"), reason


def test_review_price_type_markup_1e300_is_accepted_by_the_bridge_then_dead_lettered():
    # The POST still gets its 202 (the bridge checks the shape, not the ranges): the DLQ
    # record with the reason is where the sender sees the problem.
    from connectors.onec.objects import lookup
    from connectors.onec.validation import validate

    record = {
        "Ref_Key": REF,
        "DataVersion": "v",
        "Description": "Оптовая",
        "ПроцентСкидкиНаценки": 1e300,
    }
    assert validate(lookup("ВидыЦен"), record).key == REF
    end, reason = outcome(
        Case("ВидыЦен", record, "raw.onec.price_type", Context(), "ВидыЦен"), record
    )
    assert (end, reason.split(" exceeds")[0]) == (DEAD_LETTERED, "ПроцентСкидкиНаценки: 1E+300")


def test_review_commerceml_order_line_quantity_1e30_is_dead_lettered():
    # The XML as the site exchange sends it, through the bridge's own CommerceML reader.
    import io

    from connectors.commerceml.document import records

    xml = ORDER_XML.replace("<Количество>2</Количество>", "<Количество>1E+30</Количество>")
    (record,) = [r for r in records(io.BytesIO(xml.encode())) if r.entity == "customer_order"]
    end, reason = outcome(
        Case("CommerceML order", record.payload, record.topic), json.loads(record.value())
    )
    assert end == DEAD_LETTERED
    assert "items.0.quantity: 1E+30 exceeds decimal(20,4)" in reason, reason
    fine = [r for r in records(io.BytesIO(ORDER_XML.encode())) if r.entity == "customer_order"]
    assert (
        outcome(Case("CommerceML order", fine[0].payload, fine[0].topic), fine[0].payload)[0]
        == PUBLISHED
    )


@pytest.mark.parametrize("quantity", [1e17, "1e17", 10**17, "99999999999999999", "1E+24"])
def test_review_document_line_quantity_from_1e17_is_dead_lettered(ut11_order, quantity):
    case = Case("ЗаказКлиента", ut11_order, "raw.onec.customer_order", onec_object="ЗаказКлиента")
    record = mutated(ut11_order, ("Товары", 0, "Количество"), quantity)
    end, reason = outcome(case, record)
    assert end == DEAD_LETTERED
    assert reason.startswith("Товары line 2: Количество: ") and "exceeds decimal(20,4)" in reason


def test_largest_document_line_quantity_that_fits_is_published(ut11_order):
    case = Case("ЗаказКлиента", ut11_order, "raw.onec.customer_order", onec_object="ЗаказКлиента")
    record = mutated(ut11_order, ("Товары", 0, "Количество"), "9999999999999999.9999")
    assert outcome(case, record)[0] == PUBLISHED


@pytest.mark.parametrize(
    "category, opportunity",
    [
        ("3", "1e18"),
        ("3", 1e18),
        ("5", "1000000000000000000.00|RUB"),
        ("3", "1E+300"),
    ],
)
def test_review_deal_opportunity_from_1e18_is_dead_lettered(category, opportunity):
    case = Case("crm.deal", deal(), "raw.bitrix24.deal", deal_ctx())
    end, reason = outcome(case, deal(CATEGORY_ID=category, OPPORTUNITY=opportunity))
    assert end == DEAD_LETTERED
    assert reason.startswith("OPPORTUNITY: ") and "exceeds decimal(20,2)" in reason, reason


def test_deal_opportunity_just_below_1e18_is_published():
    case = Case("crm.deal", deal(), "raw.bitrix24.deal", deal_ctx())
    assert outcome(case, deal(OPPORTUNITY="999999999999999999.99"))[0] == PUBLISHED


@pytest.mark.parametrize(
    "value, reason",
    [
        ("NaN", "not a finite number"),
        (math.inf, "not a finite number"),
        ("\ud800", "unpaired surrogate"),
        ("9999-12-31T23:59:59-03:00", "out of range in UTC"),
    ],
)
def test_other_hostile_values_are_dead_lettered_with_their_reason(value, reason, ut11_order):
    field = {
        "not a finite number": ("СуммаДокумента",),
        "unpaired surrogate": ("Комментарий",),
        "out of range in UTC": ("ЖелаемаяДатаОтгрузки",),
    }[reason]
    case = Case("ЗаказКлиента", ut11_order, "raw.onec.customer_order")
    end, detail = outcome(case, mutated(ut11_order, field, value))
    assert end == DEAD_LETTERED and reason in detail, detail


def test_the_sink_dead_letters_a_product_name_no_encoder_can_write():
    # "\ud800" is valid JSON (an escape) but no UTF-8 encoder can write it. The bridge's
    # 1С model refuses it (a 4xx); a record on raw.onec.product that still has one (the
    # CommerceML shape, a replay) is refused by its normalizer before PostgreSQL or the
    # relay's encoder would fail on it.
    pushed = {**nomenclature(), "Description": "Мойка \ud800"}
    case = Case("Номенклатура", pushed, "raw.onec.product", onec_object="Номенклатура")
    assert outcome(case, pushed)[0] == REJECTED
    record = {**CML_PRODUCT, "name": "Мойка \ud800"}
    assert outcome(Case("CommerceML product", record, "raw.onec.product"), record) == (
        DEAD_LETTERED,
        "Product: name: is not valid Unicode (an unpaired surrogate)",
    )


def test_bitrix24_date_before_utc_year_1_is_dead_lettered():
    case = Case("crm.deal", deal(), "raw.bitrix24.deal", deal_ctx())
    end, reason = outcome(case, deal(DATE_CREATE="0001-01-01T00:30:00+03:00"))
    assert end == DEAD_LETTERED
    assert reason == "InstantOrder: created_at: 0001-01-01T00:30:00+03:00 is out of range in UTC"


ORDER_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<КоммерческаяИнформация ВерсияСхемы="2.05" ДатаФормирования="2024-05-21T10:00:00">
  <Документ>
    <Ид>77</Ид><Номер>77</Номер><Дата>2024-05-21</Дата><Время>10:00:00</Время>
    <ХозОперация>Заказ товара</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта>
    <Курс>1</Курс><Сумма>200</Сумма>
    <Контрагенты><Контрагент><Ид>c1</Ид><Наименование>Иванов</Наименование>
      <Роль>Покупатель</Роль></Контрагент></Контрагенты>
    <Товары><Товар><Ид>{REF}</Ид><Наименование>Мойка</Наименование>
      <ЦенаЗаЕдиницу>100</ЦенаЗаЕдиницу><Количество>2</Количество><Сумма>200</Сумма>
    </Товар></Товары>
  </Документ>
</КоммерческаяИнформация>
"""
