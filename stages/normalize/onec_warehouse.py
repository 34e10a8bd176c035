"""1С Склады (УТ 11, УТ 10.3) -> canonical Warehouse. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.warehouse import Warehouse
from stages.normalize import onec_common as common
from stages.normalize.oddities import ref, text
from stages.normalize.registry import Context

TOPICS = ("raw.onec.warehouse",)


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Warehouse]:
    """One Склады record -> one Warehouse."""
    record = common.record_of(value)
    ident = common.identity(record)
    if common.is_deletion(record):
        return [Warehouse(**ident, name="")]
    contacts = common.contact_info(record)
    return [
        Warehouse(
            **ident,
            **common.catalog_fields(record),
            # Older bases keep the address in a plain attribute rather than contact information.
            address=contacts.addresses[0] if contacts.addresses else text(record.get("Адрес")),
            kind=common.first_text(record, "ТипСклада", "ВидСклада"),
            retail_price_type_id=common.first_ref(
                record, "РозничныйВидЦены_Key", "ТипЦенРозничнойТорговли_Key"
            ),
            department_id=ref(record.get("Подразделение_Key"), "Подразделение_Key"),
            phones=contacts.phones,
            comment=text(record.get("Комментарий")),
        )
    ]
