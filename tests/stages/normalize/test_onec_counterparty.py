"""1С Контрагенты / Партнеры records and CommerceML order parties -> Counterparty."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from mmstream.models.base import derived_id
from stages.normalize.oddities import EMPTY_DATE, Unnormalizable
from stages.normalize.onec_counterparty import from_commerceml_party, normalize
from stages.normalize.registry import Context, normalizers

CTX = Context()
EMPTY = "00000000-0000-0000-0000-000000000000"
PARTNER = "1b7a1c3e-0b3f-11ef-9a4c-000c29b45b09"
MANAGER = "10f78d15-dfe4-11eb-b4ad-000c29b45b09"
ORG = "87fa6cc2-e901-11ea-8591-000c29b45b09"


def legal_entity_ut11(ref: str, **changes) -> dict:
    """A УТ 11 Catalog_Контрагенты item as standard OData returns it."""
    record = {
        "Ref_Key": ref,
        "DataVersion": "AAAAFQAAAAA=",
        "DeletionMark": False,
        "Parent_Key": EMPTY,
        "IsFolder": False,
        "Code": "00-000042",
        "Description": "ООО «Ромашка»",
        "НаименованиеПолное": "Общество с ограниченной ответственностью «Ромашка»",
        "ИНН": "7701234567",
        "КПП": "770101001",
        "ЮрФизЛицо": "ЮрЛицо",
        "Партнер_Key": PARTNER,
        "ГоловнойКонтрагент_Key": ref,
        "ОбособленноеПодразделение": False,
        "Комментарий": "",
        "КонтактнаяИнформация": [
            {"LineNumber": "10", "Тип": "Телефон", "Представление": "+7 (495) 000-00-10"},
            {
                "LineNumber": "2",
                "Тип": "Телефон",
                "Вид_Key": EMPTY,
                "Представление": "+7 (495) 123-45-67",
                "НомерТелефона": "4951234567",
            },
            {
                "LineNumber": "1",
                "Тип": "Адрес",
                "Вид_Key": EMPTY,
                "Представление": "Москва, ул. Тверская, д. 1",
            },
            {
                "LineNumber": "3",
                "Тип": "АдресЭлектроннойПочты",
                "Представление": "",
                "АдресЭП": "zakaz@romashka.ru",
            },
            {"LineNumber": "4", "Тип": "ВебСтраница", "Представление": "romashka.ru"},
        ],
    }
    return {**record, **changes}


def legal_entity_ut103(ref: str, **changes) -> dict:
    """A УТ 10.3 Catalog_Контрагенты item (no partners; buyer/supplier flags; main contract)."""
    record = {
        "Ref_Key": ref,
        "DataVersion": "AAAAAgAAAAA=",
        "DeletionMark": False,
        "Parent_Key": "c0a8b1d2-0b3f-11ef-9a4c-000c29b45b09",
        "IsFolder": False,
        "Code": "000000123",
        "Description": "ИП Сидоров",
        "НаименованиеПолное": "Индивидуальный предприниматель Сидоров Пётр",
        "ИНН": "500100732259",
        "КПП": "",
        "ЮрФизЛицо": "ФизЛицо",
        "ГоловнойКонтрагент_Key": EMPTY,
        "Покупатель": True,
        "Поставщик": False,
        "ОсновнойДоговорКонтрагента_Key": EMPTY,
        "ОсновнойМенеджерПокупателя_Key": MANAGER,
        "Комментарий": " звонить до 18:00 ",
    }
    return {**record, **changes}


def partner(ref: str = PARTNER, **changes) -> dict:
    """A УТ 11 Catalog_Партнеры item."""
    record = {
        "Ref_Key": ref,
        "DataVersion": "AAAABwAAAAA=",
        "DeletionMark": False,
        "Parent_Key": EMPTY,
        "IsFolder": False,
        "Code": "ПР-0001",
        "Description": "Ромашка",
        "НаименованиеПолное": "Группа компаний «Ромашка»",
        "Клиент": True,
        "Поставщик": False,
        "Конкурент": False,
        "ПрочиеОтношения": False,
        "ЮрФизЛицо": "Компания",
        "ОсновнойМенеджер_Key": MANAGER,
    }
    return {**record, **changes}


def one(record: dict):
    [out] = normalize(record, {}, CTX)
    return out


def test_the_module_claims_the_counterparty_topic():
    assert normalizers()["raw.onec.counterparty"] is normalize


def test_a_legal_entity_keeps_the_1c_ref_the_documents_name(onec_sale_document):
    # The real sale document names its counterparty by Ref_Key: the canonical id is that GUID.
    ref = onec_sale_document["Контрагент_Key"]
    c = one(legal_entity_ut11(ref))
    assert c.id == UUID(ref) and c.external_ids == {"onec": ref}
    assert (c.source, c.version, c.deleted, c.kind) == (
        "onec",
        "AAAAFQAAAAA=",
        False,
        "legal_entity",
    )
    assert (c.code, c.name, c.inn, c.kpp, c.legal_form) == (
        "00-000042",
        "ООО «Ромашка»",
        "7701234567",
        "770101001",
        "legal_entity",
    )
    assert c.full_name.startswith("Общество с ограниченной")
    assert c.partner_id == UUID(PARTNER)
    assert c.head_id is None  # 1С points a head counterparty at itself
    assert c.parent_id is None and c.is_folder is False


def test_contact_information_lines_are_read_in_line_number_order():
    c = one(legal_entity_ut11("b7569bcd-f670-11ea-8591-000c29b45b09"))
    assert c.address == "Москва, ул. Тверская, д. 1"
    # "10" after "2": line numbers are numbers, though 1С sends them as strings.
    assert c.phones == ("+7 (495) 123-45-67", "+7 (495) 000-00-10") and c.emails == (
        "zakaz@romashka.ru",
    )


def test_a_branch_points_at_its_head():
    head = "aa569bcd-f670-11ea-8591-000c29b45b09"
    c = one(legal_entity_ut11("b7569bcd-f670-11ea-8591-000c29b45b09", ГоловнойКонтрагент_Key=head))
    assert c.head_id == UUID(head)


def test_ut103_counterparty_has_no_partner_and_carries_roles():
    c = one(legal_entity_ut103("d1569bcd-f670-11ea-8591-000c29b45b09"))
    assert c.kind == "legal_entity" and c.partner_id is None and c.legal_form == "individual"
    assert (c.is_customer, c.is_supplier) == (True, False)
    assert c.manager_id == UUID(MANAGER) and c.main_contract_id is None
    assert c.parent_id == UUID("c0a8b1d2-0b3f-11ef-9a4c-000c29b45b09")
    assert c.comment == "звонить до 18:00"


def test_a_partner_is_the_business_level_counterparty():
    c = one(partner())
    assert c.kind == "partner" and c.id == UUID(PARTNER) and c.legal_form == "legal_entity"
    assert (c.is_customer, c.is_supplier, c.manager_id) == (True, False, UUID(MANAGER))
    assert c.inn == "" and c.partner_id is None


def test_an_explicit_object_name_decides_over_the_fields():
    record = partner(
        **{
            "odata.metadata": "http://1c/odata/standard.odata/$metadata#Catalog_Партнеры/@Element",
            "ИНН": "7701234567",
        }
    )
    assert one(record).kind == "partner"
    assert one({**partner(), "_object": "Контрагенты"}).kind == "legal_entity"


def test_a_record_of_another_catalog_is_refused(onec_catalog_item):
    # The real Номенклатура item, with the object name OData gives it.
    record = {
        **onec_catalog_item,
        "odata.metadata": "http://10.0.1.22/1c/odata/standard.odata/$metadata#Catalog_Номенклатура",
    }
    with pytest.raises(Unnormalizable, match="Номенклатура"):
        normalize(record, {}, CTX)
    with pytest.raises(Unnormalizable, match="cannot tell"):
        normalize(onec_catalog_item, {}, CTX)


def test_a_record_with_the_fields_of_both_catalogs_is_refused():
    with pytest.raises(Unnormalizable, match=r"matched \['legal_entity', 'partner'\]"):
        normalize({**partner(), "ИНН": "7701234567"}, {}, CTX)


def test_contracts_are_read_when_the_record_carries_them():
    contracts = [
        {
            "LineNumber": "2",
            "Ref_Key": "c2000000-0b3f-11ef-9a4c-000c29b45b09",
            "Номер": "Д-17",
            "Description": "Договор поставки № Д-17",
            "Дата": "2024-03-01T00:00:00",
            "СрокДействия": EMPTY_DATE,
            "ВидДоговора": "СПокупателем",
            "Организация_Key": ORG,
            "ВалютаВзаиморасчетов_Key": EMPTY,
            "DeletionMark": False,
        },
        {
            "LineNumber": "1",
            "Ref_Key": "c1000000-0b3f-11ef-9a4c-000c29b45b09",
            "Code": "000001",
            "Description": "Основной договор",
            "Дата": EMPTY_DATE,
            "ДатаОкончанияДействия": "2025-12-31T00:00:00",
            "Организация_Key": EMPTY,
            "DeletionMark": True,
        },
    ]
    c = one(legal_entity_ut11("b7569bcd-f670-11ea-8591-000c29b45b09", Договоры=contracts))
    first, second = c.contracts
    assert (
        first.id,
        first.number,
        first.signed_on,
        first.valid_until,
        first.organization_id,
        first.deleted,
    ) == (
        UUID("c1000000-0b3f-11ef-9a4c-000c29b45b09"),
        "000001",
        None,
        date(2025, 12, 31),
        None,
        True,
    )
    assert (
        second.number,
        second.name,
        second.signed_on,
        second.valid_until,
        second.kind,
        second.organization_id,
        second.currency_id,
    ) == (
        "Д-17",
        "Договор поставки № Д-17",
        date(2024, 3, 1),
        None,
        "СПокупателем",
        UUID(ORG),
        None,
    )


@pytest.mark.parametrize(
    "contracts, reason",
    [
        ([{"LineNumber": "1", "Ref_Key": EMPTY}], "a contract without its reference"),
        ([{"LineNumber": 1, "Ref_Key": "c1000000-0b3f-11ef-9a4c-000c29b45b09"}], None),
        ([{"LineNumber": "0", "Ref_Key": "c1000000-0b3f-11ef-9a4c-000c29b45b09"}], "LineNumber"),
        ({"Ref_Key": "c1000000-0b3f-11ef-9a4c-000c29b45b09"}, "must be a list"),
        (["c1000000-0b3f-11ef-9a4c-000c29b45b09"], "must be an object"),
    ],
)
def test_bad_contract_lines_are_refused(contracts, reason):
    record = legal_entity_ut11("b7569bcd-f670-11ea-8591-000c29b45b09", Договоры=contracts)
    if reason is None:  # a numeric LineNumber is still a line number
        assert one(record).contracts[0].number == ""
        return
    with pytest.raises(Unnormalizable, match=reason):
        normalize(record, {}, CTX)


def test_a_main_contract_reference_is_kept():
    main = "c3000000-0b3f-11ef-9a4c-000c29b45b09"
    c = one(
        legal_entity_ut103(
            "d1569bcd-f670-11ea-8591-000c29b45b09", ОсновнойДоговорКонтрагента_Key=main
        )
    )
    assert c.main_contract_id == UUID(main)


def test_the_all_zero_guid_is_no_reference():
    c = one(
        legal_entity_ut11(
            "b7569bcd-f670-11ea-8591-000c29b45b09", Партнер_Key=EMPTY, ГоловнойКонтрагент_Key=EMPTY
        )
    )
    assert c.partner_id is None and c.head_id is None


def test_deletion_mark_keeps_the_content():
    c = one(legal_entity_ut11("b7569bcd-f670-11ea-8591-000c29b45b09", DeletionMark=True))
    assert c.deleted is True and c.name == "ООО «Ромашка»"


def test_a_vanished_object_is_a_deletion_with_identity_only():
    ref = "b7569bcd-f670-11ea-8591-000c29b45b09"
    c = one(
        {
            "Ref_Key": ref,
            "DataVersion": "deleted:AAAAFQAAAAA=",
            "DeletionMark": True,
            "_deleted": True,
        }
    )
    assert (c.id, c.deleted, c.version, c.kind, c.name) == (
        UUID(ref),
        True,
        "deleted:AAAAFQAAAAA=",
        None,
        "",
    )


def test_an_unknown_legal_form_stays_as_1c_names_it():
    c = one(legal_entity_ut11("b7569bcd-f670-11ea-8591-000c29b45b09", ЮрФизЛицо="Нотариус"))
    assert c.legal_form == "Нотариус"


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"Ref_Key": EMPTY}, "Ref_Key: missing or the empty reference"),
        ({"Ref_Key": "Ромашка"}, "Ref_Key: not a GUID"),
        ({"DataVersion": ""}, "DataVersion: missing"),
        ({"Description": "Ром\x00ашка"}, "NUL"),
        ({"Партнер_Key": "не-гуид"}, "Партнер_Key: not a GUID"),
        ({"DeletionMark": "возможно"}, "DeletionMark: not Y/N"),
        ({"КонтактнаяИнформация": [{"LineNumber": "", "Тип": "Телефон"}]}, "LineNumber"),
    ],
)
def test_records_that_cannot_be_normalized_say_which_field(changes, reason):
    with pytest.raises(Unnormalizable, match=reason):
        normalize(legal_entity_ut11("b7569bcd-f670-11ea-8591-000c29b45b09", **changes), {}, CTX)


def test_a_value_that_is_not_an_object_is_refused():
    with pytest.raises(Unnormalizable, match="expected a JSON object"):
        normalize([partner()], {}, CTX)  # type: ignore[arg-type]


def test_the_real_commerceml_order_party_gets_a_derived_id(commerceml_order_records):
    parties = [p for r in commerceml_order_records for p in r["counterparties"]]
    c = from_commerceml_party(parties[0])
    # "1#admin# admin" is a site's id, not a 1С GUID.
    assert c.id == derived_id("counterparty", "commerceml", "1#admin# admin")
    assert (c.source, c.kind, c.name, c.external_ids) == ("commerceml", "legal_entity", "admin", {})
    assert from_commerceml_party(parties[0]).version == c.version  # unchanged = duplicate


def test_a_commerceml_party_with_a_guid_is_the_1c_counterparty():
    guid = "b7569bcd-f670-11ea-8591-000c29b45b09"
    c = from_commerceml_party(
        {
            "id": guid,
            "name": "",
            "full_name": "ООО «Ромашка»",
            "inn": "7701234567",
            "kpp": "770101001",
        }
    )
    assert c.id == UUID(guid) and c.external_ids == {"onec": guid} and c.name == "ООО «Ромашка»"
    with pytest.raises(Unnormalizable, match="neither"):
        from_commerceml_party({"id": guid, "name": "", "full_name": ""})
