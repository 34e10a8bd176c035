"""Canonical model -> Avro schema. The models are the single description of an entity; the
committed ``avro/<entity>.avsc`` files are generated from them (``make avro``) and a test
fails when a committed schema differs from what its model generates.

Type mapping (chosen for standard consumers — kcat, Connect, ksqlDB, Spark):
UUID -> string/uuid, Decimal -> bytes/decimal (precision 20, scale from the field's
``json_schema_extra={"scale": n}``, default 4: the same rule the models' bound check uses,
:mod:`mmstream.models.bounds`, so every entity that can be built can be written), datetime -> long/timestamp-micros (UTC),
date -> int/date, dict[str, str] -> map of strings, tuple[Model, ...] -> array of records,
Literal -> string (enums break BACKWARD compatibility when a value is added), ``X | None``
-> union with null first and a null default.
"""

from __future__ import annotations

import functools
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

# DEFAULT_SCALE re-exported: normalizers import the Avro constants from here.
from mmstream.models.bounds import DECIMAL_PRECISION, decimal_scale
from mmstream.models.bounds import DEFAULT_SCALE as DEFAULT_SCALE

NAMESPACE = "ru.mastermobile.stream.norm"

# Set by the sink and the outbox relay on every record, not by the model.
ENVELOPE_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "name": "event_id",
        "type": {"type": "string", "logicalType": "uuid"},
        "doc": "stable id of this change (also the ce_id header)",
    },
    {
        "name": "changed_at",
        "type": {"type": "long", "logicalType": "timestamp-millis"},
        "doc": "when the pipeline recorded the change",
    },
    {
        "name": "revision",
        "type": "long",
        "default": 0,
        "doc": "per-entity change counter (1 = first version); keep the highest per id",
    },
)


def record_name(entity: str) -> str:
    """``customer_order`` -> ``CustomerOrder``."""
    return "".join(part.capitalize() for part in entity.split("_"))


def _scale(info: FieldInfo | None) -> int:
    # One rule for the schema and for the model's bound check (mmstream.models.bounds).
    return decimal_scale(info)


def _type(tp: Any, info: FieldInfo | None, named: set[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"unsupported union {tp!r}: only X | None")
        return ["null", _type(rest[0], info, named)]
    if origin is typing.Literal:
        return "string"
    if origin is typing.Annotated:
        return _type(args[0], info, named)
    if origin in (tuple, list):
        return {"type": "array", "items": _type(args[0], None, named)}
    if origin is dict:
        return {"type": "map", "values": _type(args[1], None, named)}
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp.__name__ in named:
            return f"{NAMESPACE}.{tp.__name__}"
        named.add(tp.__name__)
        return {
            "type": "record",
            "name": tp.__name__,
            "namespace": NAMESPACE,
            "doc": (tp.__doc__ or "").strip().split("\n")[0],
            "fields": [_field(n, f, named) for n, f in tp.model_fields.items()],
        }
    simple = {str: "string", bool: "boolean", int: "long", float: "double"}
    if tp in simple:
        return simple[tp]
    if tp is UUID:
        return {"type": "string", "logicalType": "uuid"}
    if tp is Decimal:
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": DECIMAL_PRECISION,
            "scale": _scale(info),
        }
    if tp is datetime:
        return {"type": "long", "logicalType": "timestamp-micros"}
    if tp is date:
        return {"type": "int", "logicalType": "date"}
    raise TypeError(f"no Avro mapping for {tp!r}")


def _default(info: FieldInfo) -> Any:
    # No model default depends on other fields, so the factory gets no validated data.
    value = info.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (UUID, Decimal, datetime, date)):
        raise TypeError("defaults of logical types are not portable; use None")
    return value


def _field(name: str, info: FieldInfo, named: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": _type(info.annotation, info, named)}
    if info.description:
        out["doc"] = info.description
    if not info.is_required() and (
        info.default is not PydanticUndefined or info.default_factory is not None
    ):
        out["default"] = _default(info)
    return out


def schema_for(model: type[BaseModel], entity: str, doc: str | None = None) -> dict[str, Any]:
    """The Avro schema of ``model`` as published on ``norm.<entity>``."""
    named: set[str] = set()
    fields = [_field(n, f, named) for n, f in model.model_fields.items()]
    return {
        "type": "record",
        "name": record_name(entity),
        "namespace": NAMESPACE,
        "doc": doc or (model.__doc__ or "").strip().split("\n")[0],
        "fields": fields + [dict(f) for f in ENVELOPE_FIELDS],
    }


def avro_record(entity: BaseModel) -> dict[str, Any]:
    """``entity`` as the dict fastavro writes with :func:`schema_for`'s schema: decimals
    quantized to their field's scale (fastavro refuses more digits than the scale), lines as
    lists. Envelope fields are the caller's."""
    out: dict[str, Any] = {}
    for name, quantum, info in _plan(type(entity)):
        value = getattr(entity, name)
        kind = type(value)
        if value is None or kind in _AS_IS:
            out[name] = value
        elif kind is Decimal:
            out[name] = value.quantize(quantum)
        else:
            out[name] = _avro_value(value, info)
    return out


#: Exact types :func:`_avro_value` returns unchanged: the per-record loop copies them without
#: its chain of isinstance checks (a subclass still takes the general path).
_AS_IS = frozenset({str, int, bool, float, UUID, datetime, date})


@functools.cache
def _plan(model: type[BaseModel]) -> tuple[tuple[str, Decimal, FieldInfo], ...]:
    """Each field of ``model`` with the quantum of its Decimal scale: read once per model,
    not per record (``model_fields`` is a descriptor that builds its answer on each access)."""
    return tuple((name, _quantum(_scale(info)), info) for name, info in model.model_fields.items())


@functools.cache
def _quantum(scale: int) -> Decimal:
    return Decimal(1).scaleb(-scale)


def _avro_value(value: Any, info: FieldInfo | None) -> Any:
    kind = type(value)
    # Exact types first: isinstance against BaseModel goes through ABCMeta, the slowest check,
    # and lines, maps and their items are these types.
    if value is None or kind in _AS_IS:
        return value
    if kind is tuple or kind is list:
        return [_avro_value(v, None) for v in value]
    if kind is dict:
        return {k: _avro_value(v, None) for k, v in value.items()}
    if isinstance(value, Decimal):
        return value.quantize(_quantum(_scale(info)))
    if isinstance(value, BaseModel):
        return avro_record(value)
    if isinstance(value, (tuple, list)):
        return [_avro_value(v, None) for v in value]
    if isinstance(value, dict):
        return {k: _avro_value(v, None) for k, v in value.items()}
    return value
