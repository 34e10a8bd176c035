"""The master-data actions (flow 1): their pure field mappings, on canonical rows built from
the models as the entity sink publishes them (JSON, canonical field names), and the actions
themselves against the emulator (ASGI) with the crosswalk on real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.bitrix24.client import Bitrix24Client
from devstack.emulators.bitrix24 import create_app
from mmstream.models.counterparty import Counterparty
from mmstream.models.employee import Employee
from mmstream.models.price import Price, price_id
from mmstream.models.price_type import PriceType
from mmstream.models.warehouse import Warehouse
from mmstream.settings import Bitrix24Settings, Settings
from stages.egress.actions import Targets
from stages.egress.bitrix24_master import (
    ORIGINATOR,
    CounterpartyAction,
    EmployeeAction,
    PriceAction,
    PriceTypeAction,
    WarehouseAction,
    counterparty_fields,
    crm_key,
    crm_kind,
    currency_code,
    is_echo,
    multifield_values,
    parse_crm_key,
    price_fields,
    price_type_fields,
    split_person_name,
    store_fields,
    user_lookups,
)
from stages.egress.delivery import Change, Crosswalk, DependencyPending
from stages.outbox.restate import REPAIR_MARK

GUID = "5f2b8a3e-0c1d-4e5f-8a9b-1c2d3e4f5a6b"


def row(model, **fields) -> dict:
    """A canonical row as the egress payload carries it."""
    base = {
        "id": fields.pop("id", GUID),
        "source": fields.pop("source", "onec"),
        "version": "AAAAAQ==",
    }
    return model(**base, **fields).model_dump(mode="json")


def test_partner_and_legal_entity_are_companies_persons_are_contacts():
    assert crm_kind(row(Counterparty, kind="partner", name="Ромашка")) == "company"
    assert crm_kind(row(Counterparty, kind="legal_entity", legal_form="legal_entity")) == "company"
    assert crm_kind(row(Counterparty, kind="legal_entity", legal_form="entrepreneur")) == "company"
    assert crm_kind(row(Counterparty, kind="legal_entity", legal_form="individual")) == "contact"
    assert crm_kind(row(Counterparty, kind="contact", name="Иванов Иван")) == "contact"


def test_company_fields_carry_the_origin_id_and_the_customer_type():
    payload = row(
        Counterparty,
        kind="legal_entity",
        name="ООО Ромашка",
        full_name="Общество с ограниченной ответственностью «Ромашка»",
        is_customer=True,
        is_supplier=True,
        address="Москва, Ленина 1",
        comment="VIP",
        inn="7701234567",
    )
    fields = counterparty_fields(payload, "company", assigned_by_id=7)
    assert fields == {
        "ORIGIN_ID": GUID,
        "ORIGINATOR_ID": ORIGINATOR,
        "TITLE": "ООО Ромашка",
        "COMPANY_TYPE": "CUSTOMER",
        "ADDRESS": "Москва, Ленина 1",
        "COMMENTS": "VIP",
        "ASSIGNED_BY_ID": 7,
    }


def test_company_without_a_short_name_uses_the_full_one_and_keeps_the_type_unset():
    payload = row(Counterparty, kind="partner", full_name="ИП Сидоров")
    fields = counterparty_fields(payload, "company")
    assert fields["TITLE"] == "ИП Сидоров" and "COMPANY_TYPE" not in fields
    supplier = counterparty_fields(
        row(Counterparty, kind="partner", name="x", is_supplier=True), "company"
    )
    assert supplier["COMPANY_TYPE"] == "SUPPLIER"


def test_contact_fields_split_the_full_name_and_link_the_company():
    payload = row(Counterparty, kind="contact", name="Петров Иван Сергеевич")
    fields = counterparty_fields(payload, "contact", company_id=12)
    assert (fields["LAST_NAME"], fields["NAME"], fields["SECOND_NAME"]) == (
        "Петров",
        "Иван",
        "Сергеевич",
    )
    assert fields["COMPANY_ID"] == 12 and fields["TYPE_ID"] == "CLIENT"
    assert "TITLE" not in fields and fields["ORIGIN_ID"] == GUID


@pytest.mark.parametrize(
    "name,expected",
    [
        ("Анна", {"NAME": "Анна", "LAST_NAME": "", "SECOND_NAME": ""}),
        ("  Ким  Ли ", {"LAST_NAME": "Ким", "NAME": "Ли", "SECOND_NAME": ""}),
        ("", {"LAST_NAME": "", "NAME": "", "SECOND_NAME": ""}),
    ],
)
def test_split_person_name(name, expected):
    assert split_person_name(name) == expected


def test_multifield_values_add_new_remove_gone_and_leave_kept_ones_alone():
    current = [
        {"ID": "5", "VALUE": "+7 900 1", "VALUE_TYPE": "WORK"},
        {"ID": "6", "VALUE": "+7 900 2", "VALUE_TYPE": "WORK"},
    ]
    assert multifield_values(current, ["+7 900 1", "+7 900 3", "+7 900 3", " "]) == [
        {"ID": "6", "VALUE": ""},
        {"VALUE": "+7 900 3", "VALUE_TYPE": "WORK"},
    ]
    assert multifield_values(None, ["a@x.ru"]) == [{"VALUE": "a@x.ru", "VALUE_TYPE": "WORK"}]
    assert multifield_values(current, ["+7 900 1", "+7 900 2"]) == []


def test_crm_keys_round_trip_and_reject_other_shapes():
    assert crm_key("company", "42") == "company:42"
    assert parse_crm_key("contact:7") == ("contact", 7)
    assert parse_crm_key(None) is None and parse_crm_key("42") is None
    assert parse_crm_key("user:x") is None


def test_echo_is_a_version_from_bitrix24():
    assert is_echo(row(Counterparty, kind="partner", source="bitrix24"))
    assert not is_echo(row(Counterparty, kind="partner", source="onec"))
    assert not is_echo(row(Counterparty, kind="partner", source="commerceml"))


def test_a_restated_row_is_written_whoever_wrote_it_last():
    # stages/outbox/restate.py: a reconcile repair or a superseded DLQ replay.
    restated = {**row(Counterparty, kind="partner", source="bitrix24"), REPAIR_MARK: "r-1"}
    assert not is_echo(restated)


def test_store_fields_need_an_address_and_use_the_name_without_one():
    payload = row(
        Warehouse,
        name="Склад Центральный",
        code="000000001",
        phones=("+7 495 1", "+7 495 2"),
        comment="въезд со двора",
    )
    assert store_fields(payload) == {
        "title": "Склад Центральный",
        "address": "Склад Центральный",
        "xmlId": GUID,
        "code": "000000001",
        "active": "Y",
        "phone": "+7 495 1",
        "description": "въезд со двора",
    }
    with_address = store_fields(row(Warehouse, name="Юг", address="Ростов, Мира 2", deleted=True))
    assert with_address["address"] == "Ростов, Мира 2" and with_address["active"] == "N"


def test_price_type_fields_leave_the_base_flag_to_the_portal():
    assert price_type_fields(row(PriceType, name="Розничная")) == {
        "name": "Розничная",
        "xmlId": GUID,
    }


@pytest.mark.parametrize(
    "currency,expected",
    [
        ("", "RUB"),
        ("руб", "RUB"),
        ("руб.", "RUB"),
        ("RUR", "RUB"),
        ("usd", "USD"),
        ("EUR", "EUR"),
        ("у.е.", "RUB"),
        ("643", "RUB"),
    ],
)
def test_currency_code(currency, expected):
    assert currency_code({"currency": currency}) == expected


def test_price_fields_for_the_portal_ids_of_product_and_type():
    product, ptype = uuid.uuid4(), uuid.uuid4()
    payload = row(
        Price,
        id=str(price_id(product, None, ptype)),
        product_id=product,
        price_type_id=ptype,
        price=Decimal("1234.50"),
        currency="руб",
    )
    assert price_fields(payload, 8, 2) == {
        "productId": 8,
        "catalogGroupId": 2,
        "price": 1234.5,
        "currency": "RUB",
    }
    # The sink's JSON carries numerics as numbers.
    assert price_fields({**payload, "price": 99}, 8, 2)["price"] == 99.0
    with pytest.raises(ValueError, match="not a number"):
        price_fields({**payload, "price": "abc"}, 8, 2)


def test_user_lookups_try_the_guid_then_every_email():
    payload = row(
        Employee, kind="user", name="Курьер Иван", emails=("ivan@example.com", " ", "i@example.org")
    )
    assert user_lookups(payload) == [
        {"XML_ID": GUID},
        {"EMAIL": "ivan@example.com"},
        {"EMAIL": "i@example.org"},
    ]
    assert user_lookups(payload, "UF_USR_1C_GUID")[0] == {"UF_USR_1C_GUID": GUID}


# -- the actions, against the emulator (ASGI) and the crosswalk on real PostgreSQL ---------

HOOK = "/rest/1/mastertest/"
BASE = "http://portal.test"


def act(db_url, scenario):
    """Run ``scenario(targets, xwalk, admin)`` against a fresh emulator and database."""
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)

    async def main():
        portal = Bitrix24Settings(webhook_url=BASE + HOOK, rate_per_s=1e6, burst=1000)
        client = Bitrix24Client(portal, transport=httpx.ASGITransport(app=app))
        admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        engine = create_async_engine(db_url)
        # Actions use the portal client and its settings (products: the catalog's iblockId).
        targets = Targets(
            settings=Settings(_env_file=None, bitrix24=portal),
            bitrix24=client,
            onec=None,
            producer=None,
        )
        try:
            return await scenario(targets, Crosswalk(engine), admin)
        finally:
            await client.aclose()
            await admin.aclose()
            await engine.dispose()

    return asyncio.run(main())


def change(entity: str, payload: dict, kind: str = "upsert") -> Change:
    return Change(
        entity=entity,
        entity_id=payload["id"],
        payload=payload,
        change=kind,
        outbox_id=1,
        event_id="e1",
    )


async def calls(admin, method: str) -> list[dict]:
    return (await admin.get("/_emulator/calls", params={"method": method})).json()


def test_counterparty_found_by_origin_id_is_updated_not_added_again(db_url):
    phones = ("+7 495 1",)

    async def scenario(targets, xwalk, admin):
        # An earlier attempt created it, but its answer (and the crosswalk link) was lost.
        await admin.put(
            "/_emulator/entities/company/9",
            json={
                "TITLE": "Старое",
                "ORIGIN_ID": GUID,
                "PHONE": [{"ID": "1", "VALUE": "+7 495 1", "VALUE_TYPE": "WORK"}],
            },
        )
        action = CounterpartyAction(targets)
        payload = row(Counterparty, kind="legal_entity", name="Ромашка", phones=phones)
        first = await action.apply(change("counterparty", payload), xwalk)
        second = await action.apply(change("counterparty", {**payload, "name": "Ромашка 2"}), xwalk)
        companies = (await admin.get("/_emulator/entities/company")).json()
        return (
            first,
            second,
            companies,
            await calls(admin, "crm.company.add"),
            await xwalk.external_id("counterparty", "bitrix24", GUID),
        )

    first, second, companies, adds, linked = act(db_url, scenario)
    assert first == second == linked == "company:9"
    assert adds == []
    assert [(c["TITLE"], [p["VALUE"] for p in c["PHONE"]]) for c in companies] == [
        ("Ромашка 2", ["+7 495 1"])
    ]


def test_contact_links_its_partner_company_and_echoes_are_not_written(db_url):
    partner = str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        action = CounterpartyAction(targets)
        await action.apply(
            change("counterparty", row(Counterparty, id=partner, kind="partner", name="Ромашка")),
            xwalk,
        )
        person = row(Counterparty, kind="contact", name="Петров Иван", partner_id=partner)
        key = await action.apply(change("counterparty", person), xwalk)
        echo = await action.apply(
            change("counterparty", {**person, "source": "bitrix24", "name": "Другое"}), xwalk
        )
        folder = await action.apply(
            change(
                "counterparty",
                row(
                    Counterparty,
                    id=str(uuid.uuid4()),
                    kind="partner",
                    name="Группа",
                    is_folder=True,
                ),
            ),
            xwalk,
        )
        contacts = (await admin.get("/_emulator/entities/contact")).json()
        return key, echo, folder, contacts, await calls(admin, "crm.contact.update")

    key, echo, folder, contacts, updates = act(db_url, scenario)
    assert key == "contact:1" and echo is None and folder is None
    assert [(c["LAST_NAME"], c["COMPANY_ID"]) for c in contacts] == [("Петров", "1")]
    assert updates == []


def test_warehouse_is_keyed_by_xml_id_and_a_deletion_deactivates_it(db_url):
    async def scenario(targets, xwalk, admin):
        action = WarehouseAction(targets)
        payload = row(Warehouse, name="Склад")
        created = await action.apply(change("warehouse", payload), xwalk)
        again = await action.apply(change("warehouse", payload), xwalk)
        gone = await action.apply(
            change("warehouse", {"id": GUID, "source": "onec", "deleted": True}, "delete"), xwalk
        )
        never = await action.apply(
            change(
                "warehouse", {"id": str(uuid.uuid4()), "source": "onec", "deleted": True}, "delete"
            ),
            xwalk,
        )
        return created, again, gone, never, (await admin.get("/_emulator/directory/store")).json()

    created, again, gone, never, stores = act(db_url, scenario)
    assert created == again == gone == "1" and never is None
    assert [(s["title"], s["active"]) for s in stores] == [("Склад", "N")]


def test_price_waits_for_product_and_price_type_then_updates_in_place(db_url):
    product, ptype = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        action = PriceAction(targets)
        payload = row(
            Price,
            id=str(price_id(uuid.UUID(product), None, uuid.UUID(ptype))),
            product_id=product,
            price_type_id=ptype,
            price=Decimal("10.5"),
        )
        with pytest.raises(DependencyPending, match="product"):
            await action.apply(change("price", payload), xwalk)
        created = (
            await targets.bitrix24.call(
                "catalog.product.add", {"fields": {"iblockId": 14, "name": "Чай", "xmlId": product}}
            )
        )["element"]["id"]
        await xwalk.link("product", "bitrix24", product, str(created))
        with pytest.raises(DependencyPending, match="price_type"):
            await action.apply(change("price", payload), xwalk)
        await PriceTypeAction(targets).apply(
            change("price_type", row(PriceType, id=ptype, name="Розничная")), xwalk
        )
        first = await action.apply(change("price", payload), xwalk)
        second = await action.apply(change("price", {**payload, "price": 12}), xwalk)
        variant = await action.apply(
            change("price", {**payload, "characteristic_id": str(uuid.uuid4())}), xwalk
        )
        return first, second, variant, (await admin.get("/_emulator/directory/price")).json()

    first, second, variant, prices = act(db_url, scenario)
    assert first == second == "1" and variant is None
    assert [(p["price"], p["currency"]) for p in prices] == [(12.0, "RUB")]


def test_employee_links_the_user_by_email_or_waits_for_one(db_url):
    async def scenario(targets, xwalk, admin):
        action = EmployeeAction(targets)
        user = row(Employee, kind="user", name="Курьер", emails=("c@example.com",), is_active=True)
        with pytest.raises(DependencyPending, match=r"no active Bitrix24 user.*EMAIL=c@example"):
            await action.apply(change("employee", user), xwalk)
        inactive = await action.apply(change("employee", {**user, "is_active": False}), xwalk)
        person = await action.apply(change("employee", {**user, "kind": "person"}), xwalk)
        await admin.post("/_emulator/users", json={"ID": 5, "EMAIL": "C@example.com"})
        linked = await action.apply(change("employee", user), xwalk)
        return inactive, person, linked, await xwalk.external_id("employee", "bitrix24", GUID)

    inactive, person, linked, crosswalked = act(db_url, scenario)
    assert inactive is None and person is None
    assert linked == crosswalked == "user:5"
