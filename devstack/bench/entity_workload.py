"""The mixed-entity load of the entity sink benchmark: 1С products, warehouses,
counterparties, customer orders (with lines; each derives a delivery task) and cash receipts
(ПКО) in the OData shape the bridge
publishes, in the mix a real exchange produces (new versions, re-sends of the same
DataVersion, stale replays of an older version after the newer one).

The record shapes are those the normalizer tests build (УТ 11 Catalog_Склады,
Catalog_Контрагенты, Document_ЗаказКлиента, Document_ПриходныйКассовыйОрдер); they are
copied here, not imported, so the bench does not depend on the test tree.
"""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from devstack.bench.workload import (
    V1,
    V2,
    RawRecord,
    encode,
    product_mix,
    record_for,
    template_record,
)
from mmstream.envelope import change_id

EMPTY = "00000000-0000-0000-0000-000000000000"
ORG = "87fa6cc2-e901-11ea-8591-000c29b45b09"
PARTNER = "11111111-0000-11ee-8000-000c29b45b09"
COUNTERPARTY = "22222222-0000-11ee-8000-000c29b45b09"
WAREHOUSE = "f40235d3-d84c-11ea-8133-0050569f62a1"
CURRENCY = "a192de9a-d84c-11ea-8133-0050569f62a1"
MANAGER = "10f78d15-dfe4-11eb-b4ad-000c29b45b09"
GOODS = (
    "2d4fe756-48a4-11ec-ad72-000c29b45b09",
    "2d4fe75f-48a4-11ec-ad72-000c29b45b09",
    "f02ce7b6-e3b3-11eb-b4ad-000c29b45b09",
)


def _changed(version: str) -> str:
    return "" if version == V1 else " (изм.)"


def warehouse(ref: str, version: str, n: int) -> dict:
    """A УТ 11 Catalog_Склады item."""
    return {
        "Ref_Key": ref,
        "DataVersion": version,
        "DeletionMark": False,
        "Parent_Key": EMPTY,
        "IsFolder": False,
        "Code": f"{n:09d}",
        "Description": f"Склад №{n}{_changed(version)}",
        "ТипСклада": "СкладскоеПомещение",
        "РозничныйВидЦены_Key": "2528e58f-e921-11ea-8591-000c29b45b09",
        "Подразделение_Key": EMPTY,
        "Комментарий": "",
        "КонтактнаяИнформация": [
            {
                "LineNumber": "1",
                "Тип": "Адрес",
                "Представление": f"г. Екатеринбург, ул. Малышева, {n}",
            },
            {"LineNumber": "2", "Тип": "Телефон", "Представление": "+7 343 000-00-00"},
        ],
    }


def counterparty(ref: str, version: str, n: int) -> dict:
    """A УТ 11 Catalog_Контрагенты item (its own head, contact lines out of order)."""
    return {
        "Ref_Key": ref,
        "DataVersion": version,
        "DeletionMark": False,
        "Parent_Key": EMPTY,
        "IsFolder": False,
        "Code": f"00-{n:06d}",
        "Description": f"ООО «Ромашка-{n}»{_changed(version)}",
        "НаименованиеПолное": f"Общество с ограниченной ответственностью «Ромашка-{n}»",
        "ИНН": f"77{n:08d}",
        "КПП": "770101001",
        "ЮрФизЛицо": "ЮрЛицо",
        "Партнер_Key": PARTNER,
        "ГоловнойКонтрагент_Key": ref,
        "ОбособленноеПодразделение": False,
        "Комментарий": "",
        "КонтактнаяИнформация": [
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
                "АдресЭП": f"zakaz{n}@romashka.ru",
            },
        ],
    }


def _document(ref: str, version: str, number: str, **extra) -> dict:
    return {
        "Ref_Key": ref,
        "DataVersion": version,
        "DeletionMark": False,
        "Number": number,
        "Date": "2024-03-05T09:15:00",
        "Posted": True,
        "Организация_Key": ORG,
        "Комментарий": "исправлен" if version != V1 else "",
        "Ответственный_Key": EMPTY,
        **extra,
    }


def customer_order(ref: str, version: str, n: int) -> dict:
    """A УТ 11 Document_ЗаказКлиента with three goods lines (string numbers, LineNumber as
    strings and out of order, one cancelled line), as the normalizer tests build it."""
    qty = 2 if version == V1 else 3
    lines = [
        {
            "Ref_Key": ref,
            "LineNumber": "2",
            "Номенклатура_Key": GOODS[0],
            "Характеристика_Key": EMPTY,
            "Упаковка_Key": EMPTY,
            "КоличествоУпаковок": 1,
            "Количество": 1,
            "Цена": 234.5,
            "Сумма": 234.5,
            "СтавкаНДС_Key": "c3a0e2f0-0000-11ee-8000-000c29b45b09",
            "СуммаНДС": 39.08,
            "Склад_Key": EMPTY,
            "Отменено": True,
        },
        {
            "Ref_Key": ref,
            "LineNumber": "1",
            "Номенклатура_Key": GOODS[1],
            "Характеристика_Key": "33333333-0000-11ee-8000-000c29b45b09",
            "Упаковка_Key": EMPTY,
            "КоличествоУпаковок": qty,
            "Количество": str(qty),
            "Цена": "500",
            "Сумма": str(500 * qty),
            "СтавкаНДС": "НДС20",
            "СуммаНДС": "166.67",
            "Склад_Key": "f40235d4-d84c-11ea-8133-0050569f62a1",
            "Отменено": False,
        },
        {
            "Ref_Key": ref,
            "LineNumber": "3",
            "Номенклатура_Key": GOODS[2],
            "Характеристика_Key": EMPTY,
            "Упаковка_Key": EMPTY,
            "КоличествоУпаковок": 1,
            "Количество": 1,
            "Цена": 118,
            "Сумма": 118,
            "СтавкаНДС": "НДС20",
            "СуммаНДС": 19.67,
            "Склад_Key": EMPTY,
            "Отменено": False,
        },
    ]
    return _document(
        ref,
        version,
        f"УТ-{n:06d}",
        ХозяйственнаяОперация="РеализацияКлиенту",
        Статус="КОтгрузке",
        Партнер_Key=PARTNER,
        Контрагент_Key=COUNTERPARTY,
        Соглашение_Key=EMPTY,
        Договор_Key=EMPTY,
        Склад_Key=WAREHOUSE,
        Валюта_Key=CURRENCY,
        СуммаДокумента=234.5 + 500 * qty + 118,
        ЦенаВключаетНДС=True,
        Менеджер_Key=MANAGER,
        ЖелаемаяДатаОтгрузки="2024-03-06T00:00:00",
        АдресДоставки="г. Москва, ул. Тверская, д. 1",
        Товары=lines,
    )


def cash_receipt(ref: str, version: str, n: int) -> dict:
    """A УТ 11 ПриходныйКассовыйОрдер: a courier hands in a customer's payment for an order."""
    return _document(
        ref,
        version,
        f"0000-{n:06d}",
        ХозяйственнаяОперация="ПоступлениеОплатыОтКлиента",
        Касса_Key="55555555-0000-11ee-8000-000c29b45b09",
        Валюта_Key=CURRENCY,
        Контрагент_Key=COUNTERPARTY,
        ПодотчетноеЛицо_Key="66666666-0000-11ee-8000-000c29b45b09",
        СуммаДокумента=1234.5,
        ПринятоОт="Петров Пётр (курьер)",
        Основание="Оплата заказа",
        ДокументОснование="5f0c1a10-0000-11ee-8000-000c29b45b09",
        ДокументОснование_Type="StandardODATA.Document_ЗаказКлиента",
        РасшифровкаПлатежа=[
            {
                "Ref_Key": ref,
                "LineNumber": "1",
                "Партнер_Key": PARTNER,
                "Заказ": "8b9660f6-6332-11ec-ad72-000c29b45b09",
                "Заказ_Type": "StandardODATA.Document_РеализацияТоваровУслуг",
                "Договор_Key": EMPTY,
                "Сумма": 1234.5,
                "СуммаВзаиморасчетов": 1234.5,
            }
        ],
    )


_PRODUCT_TEMPLATE: list[dict] = []


def product(ref: str, version: str, n: int) -> dict:
    """A УТ 11 Catalog_Номенклатура item (the captured fixture the pipeline section sends)."""
    if not _PRODUCT_TEMPLATE:
        _PRODUCT_TEMPLATE.append(template_record())
    return record_for(_PRODUCT_TEMPLATE[0], ref, version, n)


BUILDERS: dict[str, Callable[[str, str, int], dict]] = {
    "product": product,
    "warehouse": warehouse,
    "counterparty": counterparty,
    "customer_order": customer_order,
    "cash_receipt": cash_receipt,
}
# Share of objects per entity (out of 12): documents outnumber master data, as in a real base;
# products are an entity like the others (one path since issue 13).
WEIGHTS = {"product": 3, "warehouse": 1, "counterparty": 2, "customer_order": 4, "cash_receipt": 2}
_SLOTS = [e for e, w in WEIGHTS.items() for _ in range(w)]


def entity_of(number: int) -> str:
    """Which entity the object with this number is (deterministic, by WEIGHTS)."""
    return _SLOTS[number % len(_SLOTS)]


@dataclass(frozen=True)
class Send:
    """One raw record to send: which object, which version, and whether it is new."""

    entity: str
    ref: str
    version: str
    number: int
    new: bool  # a version the sink has not seen (an outbox entry); else duplicate or stale


@dataclass(frozen=True)
class EntityMix:
    """A send order over the four entities and what the sink must end up with."""

    sends: list[Send]
    objects: dict[str, int]  # entity -> rows expected in its table
    new_versions: dict[str, int]  # entity -> outbox entries expected
    two_versions: dict[str, int]  # entity -> rows whose final version must be V2
    duplicates: int
    stale: int

    def __len__(self) -> int:
        return len(self.sends)

    @property
    def total_new(self) -> int:
        return sum(self.new_versions.values())


def entity_mix(
    total: int, *, duplicate_share: float = 0.20, stale_share: float = 0.05, seed: int = 20240602
) -> EntityMix:
    """``total`` sends over the four entities, ordered as :func:`product_mix` orders them
    (V1 of every object; V2 of some mixed with re-sends of current V1s; stale V1 replays)."""
    base = product_mix(total, duplicate_share=duplicate_share, stale_share=stale_share, seed=seed)
    seen: set[tuple[str, str]] = set()
    sends = []
    for ref, version, n in base.sends:
        new = (ref, version) not in seen
        seen.add((ref, version))
        sends.append(Send(entity_of(n), ref, version, n, new))
    objects = Counter(entity_of(n) for n in {s.number for s in sends})
    new_versions = Counter(s.entity for s in sends if s.new)
    two = Counter(s.entity for s in sends if s.version == V2)
    return EntityMix(
        sends,
        {e: objects[e] for e in BUILDERS},
        {e: new_versions[e] for e in BUILDERS},
        {e: two[e] for e in BUILDERS},
        base.duplicates,
        base.stale,
    )


def closing_sends(mix: EntityMix, partitions: dict[str, int]) -> list[tuple[Send, int]]:
    """One fresh object per (entity, partition), to be sent last to that partition.

    Each partition then ends with a new version, so the last batch of the sink writes an
    outbox entry and its end is visible in the database (a batch of only duplicates and
    stale replays writes nothing a timestamp could be read from).
    """
    first = max(s.number for s in mix.sends) + 1
    out = []
    n = first
    for entity in BUILDERS:
        for partition in range(partitions[entity]):
            ref = str(uuid.UUID(int=(0xC105E << 100) | n, version=4))
            out.append((Send(entity, ref, V1, n, True), partition))
            n += 1
    return out


def record(send: Send) -> dict:
    """The 1С record of one send; a re-send is identical to the original, as 1С's are."""
    return copy.deepcopy(BUILDERS[send.entity](send.ref, send.version, send.number))


def raw_record(send: Send) -> RawRecord:
    """The bridge's raw-topic form: key Ref_Key, compact JSON, CloudEvents headers."""
    from connectors.ingress.publish import onec_event

    event = onec_event(
        entity=send.entity,
        source_id=send.ref,
        version=send.version,
        principal="bench",
        request_id=uuid.uuid4().hex,
        event_id=change_id(send.entity, send.ref, send.version),
    )
    return RawRecord(send.ref.encode(), encode(record(send)), event.headers())
