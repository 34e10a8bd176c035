"""Bitrix24 crm.contact records (as the enrichment publishes them) -> Counterparty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from mmstream.models.base import derived_id
from stages.normalize.bitrix24_contact import normalize
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import Context, normalizers

CTX = Context(portal_tz=ZoneInfo("Asia/Yekaterinburg"))
GUID = "b7569bcd-f670-11ea-8591-000c29b45b09"


def contact(ident: object = "58943", **changes) -> dict:
    """A crm.contact.get answer: UPPER_CASE, ids and numbers as strings, multi-fields."""
    record = {
        "ID": ident,
        "NAME": "Иван",
        "SECOND_NAME": "Петрович",
        "LAST_NAME": "Сидоров",
        "TYPE_ID": "CLIENT",
        "COMPANY_ID": "12",
        "ORIGIN_ID": None,
        "OPENED": "Y",
        "HAS_PHONE": "Y",
        "HAS_EMAIL": "N",
        "COMMENTS": "домофон не работает",
        "DATE_CREATE": "2024-10-23T18:18:09+03:00",
        "DATE_MODIFY": "2024-10-23T18:20:00+03:00",
        "PHONE": [
            {"ID": "1", "VALUE_TYPE": "WORK", "VALUE": "+79000000001", "TYPE_ID": "PHONE"},
            {"ID": "2", "VALUE_TYPE": "MOBILE", "VALUE": "+79000000001", "TYPE_ID": "PHONE"},
            {"ID": "3", "VALUE_TYPE": "HOME", "VALUE": "+73430000000", "TYPE_ID": "PHONE"},
        ],
        "ADDRESS": "ул. Ленина, 1, кв. 5",
        "ADDRESS_CITY": "Екатеринбург",
        "ADDRESS_POSTAL_CODE": "620000",
        "ADDRESS_2": None,
        "_event": {"event": "ONCRMCONTACTUPDATE", "kind": "UPDATE"},
        "_fetched_at": "2024-10-23T15:20:01.000Z",
    }
    return {**record, **changes}


def one(record: dict | None, headers: dict | None = None):
    [out] = normalize(record, headers or {}, CTX)
    return out


def test_the_module_claims_the_contact_topic():
    assert normalizers()["raw.bitrix24.contact"] is normalize


def test_a_contact_born_in_bitrix24_gets_a_derived_id(bitrix24_contact_add):
    # The real batch add answers the new id as a number; the record later has it as a string.
    new_id = bitrix24_contact_add["result"]["result"]["order0000000000"]
    assert isinstance(new_id, int)
    c, same = one(contact(str(new_id))), one(contact(new_id))
    assert c.id == same.id == derived_id("counterparty", "bitrix24", f"contact:{new_id}")
    assert c.external_ids == {"bitrix24": f"contact:{new_id}"}
    assert (c.source, c.kind, c.name, c.deleted) == (
        "bitrix24",
        "contact",
        "Сидоров Иван Петрович",
        False,
    )
    assert c.version == "2024-10-23T18:20:00+03:00"
    assert c.source_stamp == datetime(2024, 10, 23, 15, 20, tzinfo=UTC)
    assert c.partner_id == derived_id("counterparty", "bitrix24", "company:12")
    assert c.phones == ("+79000000001", "+73430000000") and c.emails == ()
    assert c.address == "620000, Екатеринбург, ул. Ленина, 1, кв. 5"
    assert c.comment == "домофон не работает"


def test_a_contact_we_created_from_1c_keeps_the_1c_guid():
    c = one(contact(ORIGIN_ID=GUID))
    assert c.id == UUID(GUID) and c.external_ids == {"bitrix24": "contact:58943", "onec": GUID}


def test_another_integrations_origin_id_is_not_our_id():
    assert one(contact(ORIGIN_ID="amo-123")).id == derived_id(
        "counterparty", "bitrix24", "contact:58943"
    )


def test_a_date_without_offset_is_in_the_portals_zone():
    c = one(contact(DATE_MODIFY="2024-10-23T18:20:00"))
    assert c.source_stamp == datetime(2024, 10, 23, 18, 20, tzinfo=timezone(timedelta(hours=5)))


def test_empty_objects_and_ids_arrive_as_php_empty_values():
    c = one(contact(PHONE=[], EMAIL="", COMPANY_ID="0", NAME=[], SECOND_NAME=None))
    assert c.phones == () and c.emails == () and c.partner_id is None and c.name == "Сидоров"


def test_a_tombstone_is_a_deletion_of_the_derived_id():
    headers = {
        "ce_subject": "contact:58943",
        "mm.version": "deleted",
        "ce_time": "2024-10-24T09:00:00.000Z",
    }
    c = one(None, headers)
    assert (c.id, c.deleted, c.version) == (
        derived_id("counterparty", "bitrix24", "contact:58943"),
        True,
        "deleted",
    )
    assert c.source_stamp == datetime(2024, 10, 24, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({"ce_subject": "company:58943"}, "needs the key 'contact:<id>'"),
        ({}, "needs the key"),
        ({"ce_subject": "contact:abc"}, "ID: not a number"),
    ],
)
def test_a_tombstone_without_its_key_is_refused(headers, reason):
    with pytest.raises(Unnormalizable, match=reason):
        normalize(None, headers, CTX)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"ID": None}, "ID: a contact needs a positive id"),
        ({"ID": "12.5"}, "ID: not a whole number"),
        ({"DATE_MODIFY": ""}, "DATE_MODIFY: missing"),
        ({"DATE_MODIFY": "23.10.2024 18:20"}, "DATE_MODIFY: not a date"),
        ({"PHONE": "+79000000001"}, "PHONE: expected a list"),
        ({"EMAIL": ["a@b.c"]}, r"EMAIL.0: expected an object"),
        ({"COMPANY_ID": "ООО"}, "COMPANY_ID: not a number"),
        ({"NAME": "Ива\x00н"}, "NUL"),
    ],
)
def test_records_that_cannot_be_normalized_say_which_field(changes, reason):
    with pytest.raises(Unnormalizable, match=reason):
        normalize(contact(**changes), {}, CTX)
