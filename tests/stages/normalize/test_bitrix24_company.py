"""Bitrix24 crm.company records -> Counterparty (kind partner)."""

from __future__ import annotations

from uuid import UUID

import pytest

from mmstream.models.base import derived_id
from mmstream.models.counterparty import Counterparty
from stages.normalize.bitrix24_company import normalize
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import Context, normalizers

CTX = Context()
GUID = "b7569bcd-f670-11ea-8591-000c29b45b09"


def company(**changes) -> dict:
    """A crm.company.get answer."""
    record = {
        "ID": "12",
        "TITLE": "ООО «Ромашка»",
        "COMPANY_TYPE": "CUSTOMER",
        "INDUSTRY": "IT",
        "ORIGIN_ID": "",
        "OPENED": "Y",
        "HAS_PHONE": "Y",
        "HAS_EMAIL": "Y",
        "DATE_MODIFY": "2024-10-23T18:18:09+03:00",
        "PHONE": [{"ID": "7", "VALUE_TYPE": "WORK", "VALUE": "+74951234567", "TYPE_ID": "PHONE"}],
        "EMAIL": [
            {"ID": "8", "VALUE_TYPE": "WORK", "VALUE": "zakaz@romashka.ru", "TYPE_ID": "EMAIL"}
        ],
        "ADDRESS": None,
        "COMMENTS": None,
    }
    return {**record, **changes}


def one(record: dict) -> Counterparty:
    [out] = normalize(record, {}, CTX)
    return out


def test_the_module_claims_the_company_topic():
    assert normalizers()["raw.bitrix24.company"] is normalize


def test_a_company_born_in_bitrix24_gets_a_derived_id():
    c = one(company())
    assert c.id == derived_id("counterparty", "bitrix24", "company:12")
    assert (c.kind, c.name, c.is_customer, c.is_supplier) == (
        "partner",
        "ООО «Ромашка»",
        True,
        None,
    )
    assert c.phones == ("+74951234567",) and c.emails == ("zakaz@romashka.ru",)
    assert c.address == "" and c.comment == "" and c.inn == ""


def test_the_company_a_contact_points_at_is_this_company():
    # bitrix24_contact derives partner_id the same way: the two meet without a lookup.
    from stages.normalize.bitrix24_contact import normalize as contact

    [person] = contact(
        {"ID": "5", "NAME": "Иван", "COMPANY_ID": 12, "DATE_MODIFY": "2024-10-23T18:18:09+03:00"},
        {},
        CTX,
    )
    assert person.partner_id == one(company()).id


def test_a_company_created_from_1c_is_the_1c_counterparty():
    c = one(company(ORIGIN_ID=GUID))
    assert c.id == UUID(GUID) and c.external_ids == {"bitrix24": "company:12", "onec": GUID}
    # Bitrix24 owns nothing of it: the sink takes only the crosswalk from this version.
    assert not any(Counterparty.owns("bitrix24", f) for f in Counterparty.content_fields())


@pytest.mark.parametrize(
    "company_type, customer, supplier",
    [
        ("SUPPLIER", None, True),
        ("supplier", None, True),
        ("COMPETITOR", None, None),
        ("", None, None),
    ],
)
def test_only_the_stock_company_types_set_roles(company_type, customer, supplier):
    c = one(company(COMPANY_TYPE=company_type))
    assert (c.is_customer, c.is_supplier) == (customer, supplier)


def test_a_tombstone_deletes_the_derived_id():
    [c] = normalize(None, {"ce_subject": "company:12", "mm.version": "deleted"}, CTX)
    assert c.id == derived_id("counterparty", "bitrix24", "company:12") and c.deleted is True
    assert c.source_stamp is None
    [same] = normalize({"_deleted": True, "_key": "company:12"}, {}, CTX)  # the sink's stand-in
    assert same == c


@pytest.mark.parametrize(
    "value, reason",
    [
        (company(ID="0"), "positive id"),
        (company(DATE_MODIFY=None), "DATE_MODIFY"),
        (company(PHONE={"VALUE": "+7"}), "PHONE: expected a list"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_records_that_cannot_be_normalized(value, reason):
    with pytest.raises(Unnormalizable, match=reason):
        normalize(value, {}, CTX)
