"""1С ДоговорыКонтрагентов (УТ 11, УТ 10.3; push or OData ``Catalog_ДоговорыКонтрагентов``)
-> canonical CounterpartyContract. Pure.

The owner (``Owner_Key``) is the counterparty. Field names differ by configuration: УТ 11
has ``НомерДоговора`` / ``ДатаДоговора`` (``Номер``/``Дата`` in some releases), УТ 10.3
``Номер``/``Дата`` or only ``Code``; the end of the term is ``СрокДействия`` (УТ 10.3) or
``ДатаОкончанияДействия`` (УТ 11).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.contract import CounterpartyContract
from stages.normalize import onec_common as common
from stages.normalize.oddities import onec_date, ref, text, yes_no
from stages.normalize.registry import Context

TOPICS = ("raw.onec.contract",)


def normalize(
    value: dict[str, Any], headers: Mapping[str, str], ctx: Context
) -> list[CounterpartyContract]:
    """One ДоговорыКонтрагентов record -> one CounterpartyContract."""
    record = common.record_of(value)
    ident = common.identity(record)
    if common.is_deletion(record):
        return [CounterpartyContract(**ident)]
    return [
        CounterpartyContract(
            **ident,
            counterparty_id=ref(record.get("Owner_Key"), "Owner_Key"),
            code=text(record.get("Code")),
            number=common.first_text(record, "НомерДоговора", "Номер", "Code"),
            name=text(record.get("Description")),
            signed_on=_first_date(record, ctx, "ДатаДоговора", "Дата"),
            valid_until=_first_date(record, ctx, "ДатаОкончанияДействия", "СрокДействия"),
            kind=text(record.get("ВидДоговора")),
            organization_id=ref(record.get("Организация_Key"), "Организация_Key"),
            partner_id=ref(record.get("Партнер_Key"), "Партнер_Key"),
            currency_id=ref(record.get("ВалютаВзаиморасчетов_Key"), "ВалютаВзаиморасчетов_Key"),
            is_folder=bool(yes_no(record.get("IsFolder"), "IsFolder")),
            comment=text(record.get("Комментарий")),
        )
    ]


def _first_date(record: Mapping[str, Any], ctx: Context, *fields: str):
    for field in fields:
        day = onec_date(record.get(field), ctx.onec_tz, field)
        if day is not None:
            return day
    return None
