"""The header every 1С accounting document shares: number, date, posted, organization, money.

Not an entity itself (no ``ENTITY``): customer orders, shipments, cash receipts, cash
expenses and advance reports derive from it. 1С owns every field of them. A deletion record
(the object vanished from 1С) carries only identity and version, so header fields default.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical
from mmstream.models.lines import PaymentLine, money


class AccountingDocument(Canonical):
    """A 1С document header (Номер, Дата, Проведен, Организация, Валюта, СуммаДокумента)."""

    number: str = Field("", description="document number (1С Number)")
    date: datetime | None = Field(
        None,
        description="document date and time (1С Date, in the "
        "base's time zone); none only on deletions",
    )
    posted: bool = Field(False, description="posted in 1С (Posted / Проведен)")
    organization_id: UUID | None = Field(
        None,
        description="our legal entity (Организация)",
        json_schema_extra={"ref": "organization"},
    )
    amount: Decimal | None = money("document total in its currency (СуммаДокумента)")
    currency: str = Field(
        "",
        description="currency as the source names it (CommerceML Валюта, "
        "e.g. руб); empty when 1С sends only currency_id",
    )
    currency_id: UUID | None = Field(
        None, description="1С Валюты Ref_Key of the document currency (Валюта, ВалютаДокумента)"
    )
    responsible_id: UUID | None = Field(
        None,
        description="user responsible for the document (Ответственный, Менеджер)",
        json_schema_extra={"ref": "employee"},
    )
    comment: str = Field("", description="free text (Комментарий)")
    operation: str = Field(
        "",
        description="1С kind of operation (ХозяйственнаяОперация in "
        "УТ 11, ВидОперации in УТ 10.3, ХозОперация in "
        "CommerceML)",
    )


class CashDocument(AccountingDocument):
    """A cash order header (ПКО, РКО): the cash desk, who paid or was paid, and what for."""

    cash_desk_id: UUID | None = Field(None, description="1С cash desk (Касса) Ref_Key")
    counterparty_id: UUID | None = Field(
        None, description="counterparty (Контрагент)", json_schema_extra={"ref": "counterparty"}
    )
    contract_id: UUID | None = Field(
        None, description="1С contract (Договор, ДоговорКонтрагента) Ref_Key"
    )
    employee_id: UUID | None = Field(
        None,
        description="accountable person / courier the cash came from or went to "
        "(ПодотчетноеЛицо, or Контрагент of type ФизическиеЛица)",
        json_schema_extra={"ref": "employee"},
    )
    base_document_id: UUID | None = Field(
        None, description="the base document (ДокументОснование), whatever its kind"
    )
    base_document_kind: str = Field(
        "", description="1С type of base_document_id, e.g. Document_РеализацияТоваровУслуг"
    )
    order_id: UUID | None = Field(
        None,
        description="customer order the cash is for: the base document when it is an "
        "order, else the one order all payment lines name",
        json_schema_extra={"ref": "customer_order"},
    )
    shipment_id: UUID | None = Field(
        None,
        description="shipment the cash is for: the base document when it is a "
        "shipment, else the one shipment all payment lines name",
        json_schema_extra={"ref": "shipment"},
    )
    basis: str = Field("", description="printed basis text (Основание)")
    payments: tuple[PaymentLine, ...] = Field(
        (), description="payment breakdown (РасшифровкаПлатежа)"
    )
