"""1С Пользователи, ФизическиеЛица and Сотрудники -> Employee."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from stages.normalize.oddities import EMPTY_DATE, Unnormalizable
from stages.normalize.onec_employee import normalize
from stages.normalize.registry import Context, normalizers

CTX = Context()
EMPTY = "00000000-0000-0000-0000-000000000000"
PERSON = "5a0c1f0e-8c3e-11ee-9a51-3b1c2f6a7e10"
ORG = "87fa6cc2-e901-11ea-8591-000c29b45b09"


def user(ref: str, **changes) -> dict:
    """A УТ 11 Catalog_Пользователи item: a courier who logs in."""
    record = {
        "Ref_Key": ref,
        "DataVersion": "AAAABAAAAAA=",
        "DeletionMark": False,
        "Code": "",
        "Description": "Иванов Иван (курьер)",
        "Недействителен": False,
        "Служебный": False,
        "ИдентификаторПользователяИБ": "1d6e2c4a-0000-0000-0000-000000000001",
        "ФизическоеЛицо_Key": PERSON,
        "Подразделение_Key": EMPTY,
        "КонтактнаяИнформация": [
            {"LineNumber": "1", "Тип": "Телефон", "Представление": "+7 900 000-00-01"},
            {
                "LineNumber": "2",
                "Тип": "АдресЭлектроннойПочты",
                "Представление": "ivanov@example.ru",
            },
        ],
    }
    return {**record, **changes}


def one(record: dict):
    [out] = normalize(record, {}, CTX)
    return out


def test_the_module_claims_the_employee_topic():
    assert normalizers()["raw.onec.employee"] is normalize


def test_the_user_responsible_for_the_real_sale(onec_sale_document):
    ref = onec_sale_document["Ответственный_Key"]
    e = one(user(ref))
    assert e.id == UUID(ref) and e.kind == "user" and e.name == "Иванов Иван (курьер)"
    assert (e.person_id, e.is_active, e.department_id) == (UUID(PERSON), True, None)
    assert e.phones == ("+7 900 000-00-01",) and e.emails == ("ivanov@example.ru",)


def test_an_invalid_user_is_not_active():
    assert one(user("10f78d15-dfe4-11eb-b4ad-000c29b45b09", Недействителен=True)).is_active is False


def test_ut103_user_points_at_the_person_by_its_old_name():
    e = one(
        {
            "Ref_Key": "20f78d15-dfe4-11eb-b4ad-000c29b45b09",
            "DataVersion": "AAAAAQAAAAA=",
            "DeletionMark": False,
            "Code": "Петров",
            "Description": "Петров П.П.",
            "ФизЛицо_Key": PERSON,
            "Подразделение_Key": "30f78d15-dfe4-11eb-b4ad-000c29b45b09",
        }
    )
    assert e.kind == "user" and e.person_id == UUID(PERSON) and e.is_active is None
    assert e.department_id == UUID("30f78d15-dfe4-11eb-b4ad-000c29b45b09")


def test_a_person():
    e = one(
        {
            "Ref_Key": PERSON,
            "DataVersion": "AAAAAQAAAAA=",
            "DeletionMark": False,
            "Code": "0000000001",
            "Description": "Иванов Иван Иванович",
            "ДатаРождения": "1990-02-28T00:00:00",
            "Пол": "Мужской",
            "ИНН": "667100000000",
        }
    )
    assert (e.kind, e.birth_date, e.inn, e.person_id) == (
        "person",
        date(1990, 2, 28),
        "667100000000",
        None,
    )
    unknown = one(
        {
            "Ref_Key": PERSON,
            "DataVersion": "v",
            "Description": "Аноним",
            "ДатаРождения": EMPTY_DATE,
            "Пол": "",
        }
    )
    assert unknown.birth_date is None  # 0001-01-01 is no date


def test_an_employee_of_a_base_with_hr():
    e = one(
        {
            "Ref_Key": "40f78d15-dfe4-11eb-b4ad-000c29b45b09",
            "DataVersion": "AAAAAQAAAAA=",
            "DeletionMark": False,
            "Code": "0000-00012",
            "Description": "Иванов Иван Иванович",
            "ФизическоеЛицо_Key": PERSON,
            "ГоловнаяОрганизация_Key": ORG,
            "ГоловнойСотрудник_Key": EMPTY,
            "ВАрхиве": True,
        }
    )
    assert (e.kind, e.person_id, e.organization_id, e.is_active) == (
        "employee",
        UUID(PERSON),
        UUID(ORG),
        False,
    )


def test_an_explicit_object_name_decides():
    record = user("10f78d15-dfe4-11eb-b4ad-000c29b45b09", _object="Сотрудники")
    assert one(record).kind == "employee"


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"Ref_Key": PERSON, "DataVersion": "v", "Description": "Кто-то"}, "cannot tell"),
        (
            {
                "Ref_Key": PERSON,
                "DataVersion": "v",
                "Description": "x",
                "ВАрхиве": False,
                "Недействителен": False,
            },
            r"matched \['user', 'employee'\]",
        ),
        (
            {"Ref_Key": PERSON, "DataVersion": "v", "Description": "x", "_object": "Контрагенты"},
            "Контрагенты",
        ),
        (
            {"Ref_Key": PERSON, "DataVersion": "v", "Description": "x", "ДатаРождения": "вчера"},
            "ДатаРождения: not a 1С date",
        ),
    ],
)
def test_records_that_cannot_be_normalized(record, reason):
    with pytest.raises(Unnormalizable, match=reason):
        normalize(record, {}, CTX)


def test_a_vanished_user_is_a_deletion():
    e = one({"Ref_Key": PERSON, "DataVersion": "deleted:v", "DeletionMark": True, "_deleted": True})
    assert e.deleted is True and e.kind is None
