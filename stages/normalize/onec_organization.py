"""1С Организации (УТ 11, УТ 10.3) -> canonical Organization. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.organization import Organization
from stages.normalize import onec_common as common
from stages.normalize.oddities import ref, text
from stages.normalize.registry import Context

TOPICS = ("raw.onec.organization",)


def normalize(
    value: dict[str, Any], headers: Mapping[str, str], ctx: Context
) -> list[Organization]:
    """One Организации record -> one Organization."""
    record = common.record_of(value)
    ident = common.identity(record)
    if common.is_deletion(record):
        return [Organization(**ident, name="")]
    fields = common.catalog_fields(record)
    contacts = common.contact_info(record)
    head = ref(record.get("ГоловнаяОрганизация_Key"), "ГоловнаяОрганизация_Key")
    return [
        Organization(
            **ident,
            code=fields["code"],
            name=fields["name"],
            full_name=text(record.get("НаименованиеПолное")),
            legal_form=common.legal_form(record.get("ЮрФизЛицо")),
            inn=text(record.get("ИНН")),
            kpp=text(record.get("КПП")),
            ogrn=common.first_text(record, "ОГРН", "ОсновнойГосударственныйРегистрационныйНомер"),
            prefix=text(record.get("Префикс")),
            # УТ 11 points a head organization at itself: that is "no head".
            head_id=None if head == ident["id"] else head,
            address=contacts.addresses[0] if contacts.addresses else "",
            phones=contacts.phones,
        )
    ]
