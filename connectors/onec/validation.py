"""Source-shaped validation of 1С records (standard OData / JSON push shape), per object kind.

Only what the pipeline relies on is checked: identity, version and the fields every record of
the kind has. Unknown fields pass untouched — every configuration adds its own, and
rejecting them would reject real data. The bridge publishes the original bytes; these
models only decide accept/reject and derive the key and version. Pure functions.

* catalogs: ``Ref_Key`` (GUID), ``DataVersion``, ``Description``; Номенклатура is checked
  by its own model (:class:`connectors.onec.nomenclature.OneCNomenclature`);
* documents: ``Ref_Key``, ``DataVersion``, ``Number``, ``Date`` (no zone, not empty),
  ``Posted``;
* register records (ЦеныНоменклатуры): period, dimensions and ``DataVersion``. 1С registers
  have no DataVersion of their own: the sender (our 1С extension: the recorder's version;
  the OData poller: :func:`content_version`) supplies it;
* accumulation-register balances (ТоварыНаСкладах, stock): ``Склад_Key``,
  ``Номенклатура_Key`` (GUIDs, not the empty reference), the characteristic
  (``Характеристика_Key`` in УТ 11, ``ХарактеристикаНоменклатуры_Key`` in УТ 10.3), at least
  one quantity resource (``ВНаличииBalance`` / ``КоличествоBalance`` as the Balance table
  answers, or ``ВНаличии`` / ``Количество`` of a balance snapshot our extension pushes) and an
  optional ``Period`` (the balance moment). ``DataVersion`` is optional: a balance row has
  none, so the content hash is its version. The key is the canonical stock id, so every
  version of one stock row (and the middleware's reservations of it) share a partition.
  **Movements are refused** (``register_movements_refused``): a RecordSet (``Recorder`` +
  ``RecordSet[]``) or a single movement (``RecordType`` Receipt/Expense) is a delta whose
  baseline we do not hold, and a re-posted document replaces its whole RecordSet, so
  summing movements would drift from 1С's balance; send the Balance table or a snapshot;
* every list-valued field is a tabular section: objects with a string ``LineNumber``;
* a record with ``"_deleted": true`` is a deletion (the object vanished from 1С): only its
  identity and ``DataVersion`` are required (:func:`deletion_record` builds one).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictStr,
    WithJsonSchema,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from connectors.onec.nomenclature import OneCNomenclature, validation_details
from connectors.onec.objects import OneCObject
from mmstream.errors import InvalidRecord
from mmstream.models.stock import stock_id

EMPTY_REF = UUID(int=0)
EMPTY_DATE = "0001-01-01T00:00:00"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_LINE_NUMBER_RE = re.compile(r"^[1-9][0-9]*$")


class RecordRejected(InvalidRecord):
    """A record does not have the shape of its 1С object. ``details`` lists each problem as
    ``{"field", "problem"}``; the sender must fix the record (re-sending it cannot help)."""

    def __init__(self, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(
            f"{message}: " + "; ".join(f"{d['field']}: {d['problem']}" for d in details)
        )
        self.summary = message
        self.details = details


def _onec_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise PydanticCustomError(
            "onec_date", "expected a 1С date YYYY-MM-DDTHH:MM:SS without a zone"
        )
    if value == EMPTY_DATE:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("onec_date", "not a calendar date") from None


def _filled_date(value: Any) -> datetime:
    parsed = _onec_date(value)
    if parsed is None:
        raise PydanticCustomError("onec_date", f"the empty date {EMPTY_DATE} is not allowed here")
    return parsed


_DATE_SCHEMA = WithJsonSchema(
    {"type": "string", "pattern": _DATE_RE.pattern, "examples": ["2021-12-22T17:22:08"]}
)
#: A 1С date; the empty date ``0001-01-01T00:00:00`` reads as None.
OneCDate = Annotated[datetime | None, BeforeValidator(_onec_date), _DATE_SCHEMA]
#: A 1С date that must be filled (document dates, register periods).
FilledOneCDate = Annotated[datetime, BeforeValidator(_filled_date), _DATE_SCHEMA]


class _Source(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RefIdentity(_Source):
    """The identity of a catalog item or document."""

    Ref_Key: UUID


class CatalogRecord(RefIdentity):
    """A catalog item (Контрагенты, Склады, ВидыЦен, Пользователи, …)."""

    DataVersion: StrictStr = Field(min_length=1, max_length=64)
    DeletionMark: StrictBool = False
    Description: StrictStr = Field(max_length=1024)
    Parent_Key: UUID | None = None
    IsFolder: StrictBool = False


class DocumentRecord(RefIdentity):
    """A document (ЗаказКлиента, РеализацияТоваровУслуг, ПКО, РКО, АвансовыйОтчет, …)."""

    DataVersion: StrictStr = Field(min_length=1, max_length=64)
    DeletionMark: StrictBool = False
    Number: StrictStr = Field(max_length=64)
    Date: FilledOneCDate
    Posted: StrictBool


class PriceIdentity(_Source):
    """The identity of a ЦеныНоменклатуры record: period and dimensions (УТ 11 or УТ 10.3 names)."""

    Period: FilledOneCDate
    product: UUID = Field(alias="Номенклатура_Key")
    price_type: UUID | None = Field(None, alias="ВидЦены_Key")  # УТ 11
    price_type_ut10: UUID | None = Field(None, alias="ТипЦен_Key")  # УТ 10.3
    characteristic: UUID | None = Field(None, alias="Характеристика_Key")  # УТ 11
    characteristic_ut10: UUID | None = Field(None, alias="ХарактеристикаНоменклатуры_Key")


class PriceRecord(PriceIdentity):
    """A ЦеныНоменклатуры register record."""

    DataVersion: StrictStr = Field(min_length=1, max_length=64)
    price: StrictFloat | None = Field(None, alias="Цена")
    Active: StrictBool = True


class StockBalanceIdentity(_Source):
    """The identity of a stock balance row: warehouse, product, characteristic."""

    warehouse: UUID = Field(alias="Склад_Key")
    product: UUID = Field(alias="Номенклатура_Key")
    characteristic: UUID | None = Field(None, alias="Характеристика_Key")  # УТ 11
    characteristic_ut10: UUID | None = Field(None, alias="ХарактеристикаНоменклатуры_Key")


def _quantity(value: Any) -> float | None:
    # A JSON number as 1С's OData writes it; a string or a boolean is not a quantity.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("quantity", "expected a number")
    return float(value)


_Quantity = Annotated[float | None, BeforeValidator(_quantity)]


class StockBalanceRecord(StockBalanceIdentity):
    """A balance of an accumulation register of goods (ТоварыНаСкладах): a row of its
    Balance virtual table, or a balance snapshot pushed by our 1С extension."""

    DataVersion: StrictStr | None = Field(None, min_length=1, max_length=64)
    Period: OneCDate = None
    in_stock_balance: _Quantity = Field(None, alias="ВНаличииBalance")  # УТ 11
    quantity_balance: _Quantity = Field(None, alias="КоличествоBalance")  # УТ 10.3
    in_stock: _Quantity = Field(None, alias="ВНаличии")
    quantity: _Quantity = Field(None, alias="Количество")
    reserve_balance: _Quantity = Field(None, alias="ВРезервеСоСкладаBalance")


#: Resources a stock balance must carry one of (Balance table names first).
STOCK_QUANTITY_FIELDS = ("ВНаличииBalance", "КоличествоBalance", "ВНаличии", "Количество")
#: Code of the refusal of accumulation-register movements (the details' ``code``).
MOVEMENTS_REFUSED = "register_movements_refused"
_STOCK_IDENT_FIELDS = (
    "Склад_Key",
    "Номенклатура_Key",
    "Характеристика_Key",
    "ХарактеристикаНоменклатуры_Key",
)


class DeletionRecord(_Source):
    """What is left of an object that vanished from 1С: identity and the deletion version."""

    DataVersion: StrictStr = Field(min_length=1, max_length=128)


_PRICE_IDENT_FIELDS = (
    "Номенклатура_Key",
    "Характеристика_Key",
    "ХарактеристикаНоменклатуры_Key",
    "ВидЦены_Key",
    "ТипЦен_Key",
    "Period",
)


@dataclass(frozen=True)
class OneCRecord:
    """A validated record: its object, partition key, version and identifying fields."""

    obj: OneCObject
    key: str
    version: str
    ident: dict[str, Any]
    deleted: bool = False


_Versioned = OneCNomenclature | CatalogRecord | DocumentRecord | PriceRecord | DeletionRecord
_SCHEMAS: dict[str, type[_Versioned]] = {
    "catalog": CatalogRecord,
    "document": DocumentRecord,
    "register": PriceRecord,
}


def _schema(obj: OneCObject) -> type[_Versioned]:
    if obj.entity == "product":
        return OneCNomenclature
    return _SCHEMAS[obj.kind]


def validate(obj: OneCObject, doc: Any) -> OneCRecord:
    """Check ``doc`` against its object's shape; RecordRejected lists every problem."""
    if not isinstance(doc, dict):
        raise RecordRejected(
            f"not a valid {obj.name} record",
            [{"field": "(record)", "problem": "expected a JSON object"}],
        )
    deleted = doc.get("_deleted") is True
    if obj.accumulation:
        return _validate_balance(obj, doc, deleted)
    details: list[dict[str, str]] = []
    version = None
    try:
        version = (DeletionRecord if deleted else _schema(obj)).model_validate(doc).DataVersion
    except PydanticValidationError as exc:
        details += validation_details(exc)
    details += _tabular_problems(doc)
    key: str | None = None
    ident: dict[str, Any] = {}
    try:
        key, ident = identity(obj, doc)
    except RecordRejected as exc:
        known = {d["field"] for d in details}
        details += [d for d in exc.details if d["field"] not in known]
    if details or key is None or version is None:
        raise RecordRejected(f"not a valid {obj.name} record", details)
    return OneCRecord(obj=obj, key=key, version=version, ident=ident, deleted=deleted)


def identity(obj: OneCObject, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(partition key, identifying fields) of a record, or RecordRejected.

    Catalogs and documents are keyed by Ref_Key. Register records by their dimensions and
    period, ``<product>|<characteristic>|<price type>|<period>``, which УТ 11 and УТ 10.3
    records of the same price share although their field names differ.
    """
    if obj.accumulation:
        return _balance_identity(obj, doc)
    model: type[PriceIdentity | RefIdentity] = (
        PriceIdentity if obj.kind == "register" else RefIdentity
    )
    try:
        ident = model.model_validate(doc)
    except PydanticValidationError as exc:
        raise RecordRejected(
            f"{obj.name} record without a usable identity", validation_details(exc)
        ) from None
    if isinstance(ident, RefIdentity):
        if ident.Ref_Key == EMPTY_REF:
            raise RecordRejected(
                f"{obj.name} record without a usable identity",
                [{"field": "Ref_Key", "problem": "the empty reference is not an object"}],
            )
        return str(ident.Ref_Key), {"Ref_Key": str(ident.Ref_Key)}
    return _price_key(obj, ident), {f: doc[f] for f in _PRICE_IDENT_FIELDS if f in doc}


def _price_key(obj: OneCObject, ident: PriceIdentity) -> str:
    price_type = ident.price_type or ident.price_type_ut10
    problems = []
    if ident.product == EMPTY_REF:
        problems.append(
            {"field": "Номенклатура_Key", "problem": "the empty reference is not a product"}
        )
    if price_type in (None, EMPTY_REF):
        problems.append(
            {
                "field": "ВидЦены_Key",
                "problem": "a price type is required (ВидЦены_Key in УТ 11, ТипЦен_Key in УТ 10.3)",
            }
        )
    if problems:
        raise RecordRejected(f"{obj.name} record without a usable identity", problems)
    characteristic = ident.characteristic or ident.characteristic_ut10 or EMPTY_REF
    return f"{ident.product}|{characteristic}|{price_type}|{ident.Period.isoformat()}"


def movement_problems(doc: dict[str, Any]) -> list[dict[str, str]]:
    """Why ``doc`` is an accumulation-register movement rather than a balance (empty: it is
    not one). Each problem carries the code :data:`MOVEMENTS_REFUSED`."""
    hint = (
        "stock holds balances: send rows of AccumulationRegister_ТоварыНаСкладах/Balance "
        "(or a balance snapshot), not movements"
    )
    problems = []
    if isinstance(doc.get("RecordSet"), list) or "Recorder" in doc:
        problems.append(
            {
                "field": "RecordSet",
                "problem": f"a register RecordSet; {hint}",
                "code": MOVEMENTS_REFUSED,
            }
        )
    if "RecordType" in doc:
        problems.append(
            {
                "field": "RecordType",
                "problem": f"a Receipt/Expense movement; {hint}",
                "code": MOVEMENTS_REFUSED,
            }
        )
    return problems


def _validate_balance(obj: OneCObject, doc: dict[str, Any], deleted: bool) -> OneCRecord:
    problems = movement_problems(doc)
    if problems:
        raise RecordRejected(f"not a {obj.name} balance", problems)
    details: list[dict[str, str]] = []
    version: str | None = None
    try:
        if deleted:
            version = DeletionRecord.model_validate(doc).DataVersion
        else:
            version = StockBalanceRecord.model_validate(doc).DataVersion
            if all(doc.get(f) is None for f in STOCK_QUANTITY_FIELDS):
                details.append(
                    {
                        "field": STOCK_QUANTITY_FIELDS[0],
                        "problem": "a balance needs "
                        "its quantity: " + ", ".join(STOCK_QUANTITY_FIELDS),
                    }
                )
    except PydanticValidationError as exc:
        details += validation_details(exc)
    key: str | None = None
    ident: dict[str, Any] = {}
    try:
        key, ident = _balance_identity(obj, doc)
    except RecordRejected as exc:
        known = {d["field"] for d in details}
        details += [d for d in exc.details if d["field"] not in known]
    if details or key is None:
        raise RecordRejected(f"not a valid {obj.name} balance", details)
    return OneCRecord(
        obj=obj, key=key, version=version or content_version(doc), ident=ident, deleted=deleted
    )


def _balance_identity(obj: OneCObject, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    try:
        ident = StockBalanceIdentity.model_validate(doc)
    except PydanticValidationError as exc:
        raise RecordRejected(
            f"{obj.name} balance without a usable identity", validation_details(exc)
        ) from None
    problems = [
        {"field": field, "problem": "the empty reference: a balance is by warehouse and product"}
        for field, value in (("Склад_Key", ident.warehouse), ("Номенклатура_Key", ident.product))
        if value == EMPTY_REF
    ]
    if problems:
        raise RecordRejected(f"{obj.name} balance without a usable identity", problems)
    characteristic = ident.characteristic or ident.characteristic_ut10
    if characteristic == EMPTY_REF:
        characteristic = None
    key = str(stock_id(ident.warehouse, ident.product, characteristic))
    return key, {f: doc[f] for f in _STOCK_IDENT_FIELDS if f in doc}


def _tabular_problems(doc: dict[str, Any]) -> list[dict[str, str]]:
    # In the standard OData shape the only arrays are tabular sections.
    problems = []
    for name, lines in doc.items():
        if not isinstance(lines, list):
            continue
        for index, line in enumerate(lines):
            if not isinstance(line, dict):
                problems.append(
                    {
                        "field": f"{name}.{index}",
                        "problem": "a tabular section line must be an object",
                    }
                )
            elif not (
                isinstance(line.get("LineNumber"), str)
                and _LINE_NUMBER_RE.match(line["LineNumber"])
            ):
                problems.append(
                    {
                        "field": f"{name}.{index}.LineNumber",
                        "problem": 'expected the line number as a string of digits, e.g. "1"',
                    }
                )
    return problems


def content_version(doc: dict[str, Any]) -> str:
    """A version for a record that has none (register records read over OData): a hash of
    its content, so it changes exactly when a value changes."""
    canonical = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return "h:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def deletion_record(ident: dict[str, Any], last_version: str) -> dict[str, Any]:
    """The record published when an object vanished from 1С (no tombstone exists there)."""
    return {
        **ident,
        "DataVersion": f"deleted:{last_version}",
        "DeletionMark": True,
        "_deleted": True,
    }
