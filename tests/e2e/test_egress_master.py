"""Flow 1 end to end: 1С master data (Контрагенты, Склады, ВидыЦен, Пользователи,
ЦеныНоменклатуры) -> bridge -> entity sink -> egress -> the Bitrix24 emulator, on the real
broker, PostgreSQL and processes. A new version updates instead of adding a duplicate, and
a price waits on the delayed path until its product has been delivered."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.stack import onec_product, wait_for

pytestmark = pytest.mark.e2e

ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def settings(settings):
    # The price must outlive the wait for its product on the delayed path (~0.5 s a try).
    return settings.model_copy(
        update={"retry": settings.retry.model_copy(update={"max_attempts": 60, "budget_s": 60})}
    )


def catalog(ref: str, version: str, name: str, **extra) -> dict:
    """A catalog item in the standard OData shape."""
    return {
        "Ref_Key": ref,
        "DataVersion": version,
        "DeletionMark": False,
        "Code": "000000001",
        "Description": name,
        "Parent_Key": ZERO,
        "IsFolder": False,
        **extra,
    }


def contact_line(number: int, kind: str, shown: str) -> dict:
    """A КонтактнаяИнформация line."""
    line = {"LineNumber": str(number), "Тип": kind, "Представление": shown}
    if kind == "АдресЭлектроннойПочты":
        line["АдресЭП"] = shown
    return line


def state(pipeline, path: str) -> list[dict]:
    return httpx.get(f"{pipeline.emulator_url}/_emulator/{path}", timeout=10).json()


def test_master_data_reaches_bitrix24_once_and_a_price_waits_for_its_product(pipeline):
    pipeline.start_emulator()
    httpx.post(
        f"{pipeline.emulator_url}/_emulator/users",
        timeout=10,
        json={"NAME": "Иван", "LAST_NAME": "Курьеров", "EMAIL": "Courier@Example.com"},
    ).raise_for_status()
    pipeline.start_entity_sink()
    pipeline.start_sink()
    pipeline.start_egress()
    pipeline.start_bridge()

    company, person, store, ptype, courier, product = (str(uuid.uuid4()) for _ in range(6))
    phones = [contact_line(1, "Телефон", "+7 495 111-22-33")]
    posts = [
        ("ВидыЦен", catalog(ptype, "AAAAAQ==", "Розничная", ЦенаВключаетНДС=True)),
        (
            "ЦеныНоменклатуры",
            {
                "Period": "2026-01-10T00:00:00",
                "Номенклатура_Key": product,
                "ВидЦены_Key": ptype,
                "DataVersion": "p1",
                "Цена": 150.5,
                "Active": True,
            },
        ),
        ("Склады", catalog(store, "AAAAAQ==", "Склад Центральный", Адрес="Москва, Складская 1")),
        (
            "Контрагенты",
            catalog(
                company,
                "AAAAAQ==",
                "ООО Ромашка",
                ИНН="7701234567",
                ЮрФизЛицо="ЮрЛицо",
                Покупатель=True,
                КонтактнаяИнформация=phones,
            ),
        ),
        (
            "Контрагенты",
            catalog(person, "AAAAAQ==", "Петров Иван Сергеевич", ИНН="", ЮрФизЛицо="ФизЛицо"),
        ),
        (
            "Пользователи",
            catalog(
                courier,
                "AAAAAQ==",
                "Курьеров Иван",
                Недействителен=False,
                КонтактнаяИнформация=[
                    contact_line(1, "АдресЭлектроннойПочты", "courier@example.com")
                ],
            ),
        ),
    ]
    for name, record in posts:
        resp = pipeline.post_onec(name, record)
        assert resp.status_code == 202, (name, resp.text)

    # The price refers to a product Bitrix24 does not have: it waits on the delayed path.
    pipeline.wait_sql(
        "SELECT 1 FROM egress_parked WHERE entity = 'price'", lambda r: len(r) == 1, 40
    )
    companies = wait_for(
        pipeline, "company created", lambda: (c := state(pipeline, "entities/company")) and c
    )
    assert [(c["TITLE"], c["ORIGIN_ID"], c["COMPANY_TYPE"]) for c in companies] == [
        ("ООО Ромашка", company, "CUSTOMER")
    ]
    assert [p["VALUE"] for p in companies[0]["PHONE"]] == ["+7 495 111-22-33"]
    contacts = wait_for(
        pipeline, "contact created", lambda: (c := state(pipeline, "entities/contact")) and c
    )
    assert [(c["LAST_NAME"], c["NAME"], c["ORIGIN_ID"]) for c in contacts] == [
        ("Петров", "Иван", person)
    ]
    stores = wait_for(
        pipeline, "store created", lambda: (s := state(pipeline, "directory/store")) and s
    )
    assert [(s["title"], s["xmlId"], s["address"]) for s in stores] == [
        ("Склад Центральный", store, "Москва, Складская 1")
    ]
    types = wait_for(
        pipeline, "price type created", lambda: (t := state(pipeline, "directory/priceType")) and t
    )
    assert [(t["name"], t["xmlId"]) for t in types] == [("Розничная", ptype)]
    pipeline.wait_sql(
        "SELECT external_id FROM crosswalk WHERE entity = 'employee' AND "
        "system = 'bitrix24' AND canonical_id = %s",
        lambda r: r == [("user:1",)],
        40,
        courier,
    )
    assert pipeline.emulator_calls("catalog.price.add") == []

    # A new version of the company updates it: no second company, the phone not added twice.
    changed = catalog(
        company,
        "AAAAAg==",
        "ООО Ромашка Плюс",
        ИНН="7701234567",
        ЮрФизЛицо="ЮрЛицо",
        Покупатель=True,
        КонтактнаяИнформация=phones,
    )
    assert pipeline.post_onec("Контрагенты", changed).status_code == 202
    # The product arrives: the waiting price follows it.
    assert pipeline.post_product(onec_product(product, Description="Чай")).status_code == 202

    prices = wait_for(
        pipeline, "price created", lambda: (p := state(pipeline, "directory/price")) and p
    )
    (bitrix_product,) = pipeline.emulator_products()
    assert [(p["productId"], p["catalogGroupId"], p["price"], p["currency"]) for p in prices] == [
        (bitrix_product["id"], types[0]["id"], 150.5, "RUB")
    ]
    wait_for(
        pipeline,
        "company updated",
        lambda: state(pipeline, "entities/company")[0]["TITLE"] == "ООО Ромашка Плюс",
    )
    (after,) = state(pipeline, "entities/company")
    assert [p["VALUE"] for p in after["PHONE"]] == ["+7 495 111-22-33"]
    assert len(pipeline.emulator_calls("crm.company.add")) == 1
    assert len(pipeline.emulator_calls("catalog.store.add")) == 1
    assert len(pipeline.emulator_calls("catalog.price.add")) == 1
