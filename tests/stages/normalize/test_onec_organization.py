"""1С Организации -> Organization."""

from __future__ import annotations

from uuid import UUID

import pytest

from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_organization import normalize
from stages.normalize.registry import Context, normalizers

CTX = Context()
EMPTY = "00000000-0000-0000-0000-000000000000"


def organization(ref: str, **changes) -> dict:
    """A УТ 11 Catalog_Организации item."""
    record = {
        "Ref_Key": ref,
        "DataVersion": "AAAAAgAAAAA=",
        "DeletionMark": False,
        "Code": "00-000001",
        "Description": "МастерМобайл",
        "НаименованиеПолное": "ООО «МастерМобайл»",
        "ЮрФизЛицо": "ЮрЛицо",
        "ИНН": "6671000000",
        "КПП": "667101001",
        "ОГРН": "1026600000000",
        "Префикс": "ММ",
        "ГоловнаяОрганизация_Key": ref,
        "КонтактнаяИнформация": [
            {
                "LineNumber": "1",
                "Тип": "Адрес",
                "Представление": "620014, Екатеринбург, ул. 8 Марта, 1",
            }
        ],
    }
    return {**record, **changes}


def one(record: dict):
    [out] = normalize(record, {}, CTX)
    return out


def test_the_module_claims_the_organization_topic():
    assert normalizers()["raw.onec.organization"] is normalize


def test_the_organization_of_the_real_sale(onec_sale_document):
    ref = onec_sale_document["Организация_Key"]
    o = one(organization(ref))
    assert o.id == UUID(ref) and o.source == "onec" and o.external_ids == {"onec": ref}
    assert (o.name, o.full_name, o.legal_form, o.inn, o.kpp, o.ogrn, o.prefix) == (
        "МастерМобайл",
        "ООО «МастерМобайл»",
        "legal_entity",
        "6671000000",
        "667101001",
        "1026600000000",
        "ММ",
    )
    assert o.head_id is None  # points at itself
    assert o.address.startswith("620014, Екатеринбург")


def test_ut103_names_and_a_separate_subdivision():
    head = "77fa6cc2-e901-11ea-8591-000c29b45b09"
    o = one(
        organization(
            "87fa6cc2-e901-11ea-8591-000c29b45b09",
            ОГРН=None,
            ОсновнойГосударственныйРегистрационныйНомер="304500116000157",
            ЮрФизЛицо="ФизЛицо",
            ГоловнаяОрганизация_Key=head,
        )
    )
    assert o.ogrn == "304500116000157" and o.legal_form == "individual" and o.head_id == UUID(head)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"DataVersion": None}, "DataVersion"),
        ({"ГоловнаяОрганизация_Key": "головная"}, "ГоловнаяОрганизация_Key: not a GUID"),
        ({"ИНН": "66\x0071"}, "NUL"),
    ],
)
def test_bad_records_say_which_field(changes, reason):
    with pytest.raises(Unnormalizable, match=reason):
        normalize(organization("87fa6cc2-e901-11ea-8591-000c29b45b09", **changes), {}, CTX)
