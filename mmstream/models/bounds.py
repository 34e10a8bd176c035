"""What every later stage can carry, checked once where a canonical value is built.

A canonical model's field types say what the pipeline carries (the Avro schema and the
PostgreSQL table are generated from them), but Python's types are wider than those: a
``Decimal`` may be ``1E+300``, an ``int`` may have a thousand digits, a ``str`` may hold an
unpaired surrogate (``"\\ud800"`` is valid JSON) that no UTF-8 encoder accepts. Such a value
used to pass normalization and break the outbox relay (fastavro) or the database — a whole
worker stopped for one record. Every model of :mod:`mmstream.models` therefore derives from
:class:`Bounded`, whose check refuses, as :class:`OutOfBounds` (an ``InvalidRecord``, so the
sinks dead-letter it with the reason), any value outside:

* Decimal: finite, and at most ``DECIMAL_PRECISION - scale`` digits before the point after
  rounding to the field's scale (the Avro ``decimal(20, scale)`` logical type). Digits beyond
  the scale are rounded off here, as the Avro writer always did, so the database holds what
  ``norm.<entity>`` says (and no exponent PostgreSQL ``numeric`` cannot store);
* int: the signed 64-bit range (Avro ``long``, PostgreSQL ``bigint``);
* float: finite (JSON and jsonb have no NaN/Infinity);
* str (also map keys and values, array items): no NUL (PostgreSQL text and jsonb refuse it)
  and UTF-8 encodable (no unpaired surrogates);
* datetime: representable in UTC (Avro ``timestamp-micros``; the database driver converts
  to UTC, and ``0001-01-01T00:30+03:00`` has no UTC datetime in Python).

The functions here are pure and also used by :mod:`stages.normalize.oddities`, which
refuses the same values earlier under the *source* field name (``ПроцентСкидкиНаценки``).
"""

from __future__ import annotations

import re
import types
import typing
from datetime import UTC, date, datetime
from decimal import Context, Decimal, InvalidOperation
from functools import cache
from typing import Any
from uuid import UUID

from pydantic import BaseModel, model_validator
from pydantic.fields import FieldInfo

from mmstream.errors import InvalidRecord

DECIMAL_PRECISION = 20
"""Total digits of every Avro decimal (``bytes``/``decimal``) the models generate."""
DEFAULT_SCALE = 4
"""Digits after the point of a Decimal field without ``json_schema_extra={"scale": n}``."""
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
"""Avro ``long`` and PostgreSQL ``bigint``."""
#: The code points UTF-8 cannot encode (unpaired surrogates): found without encoding.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class OutOfBounds(InvalidRecord):
    """A value is outside what the pipeline can carry (the message names the field and the
    bound). Permanent: the record goes to the stage's DLQ; fix the source and replay it."""

    code = "out_of_bounds"


def decimal_scale(info: FieldInfo | None) -> int:
    """The Avro scale of a Decimal field: ``json_schema_extra={"scale": n}``, default 4."""
    extra = info.json_schema_extra if info is not None else None
    scale = extra.get("scale") if isinstance(extra, dict) else None
    return scale if isinstance(scale, int) else DEFAULT_SCALE


def shown(value: Any, limit: int = 40) -> str:
    """``value`` as text for a reason, cut to ``limit`` characters (never raises: an int too
    long for ``str`` is described by its size)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits"
    try:
        out = str(value)
    except ValueError:
        return type(value).__name__
    return out if len(out) <= limit else out[: limit - 1] + "…"


def fit_decimal(
    value: Decimal, scale: int, precision: int = DECIMAL_PRECISION
) -> tuple[Decimal | None, str | None]:
    """``(value rounded to scale, None)`` if it fits ``decimal(precision, scale)``, else
    ``(None, reason)``. A value with no more places than ``scale`` is returned unchanged."""
    if not value.is_finite():
        return None, f"{shown(value)} is not a finite number"
    exponent = _exponent(value)
    whole = precision - scale
    if value.is_zero():
        return (value if exponent >= -scale else Decimal(0).scaleb(-scale)), None
    if value.adjusted() >= whole:
        return None, _too_wide(value, precision, scale)
    if exponent >= -scale:
        return value, None
    try:
        # Enough precision for every digit the rounding can leave (whole + scale + a carry).
        rounded = value.quantize(Decimal(1).scaleb(-scale), context=Context(prec=precision + 2))
    except InvalidOperation:
        return None, _too_wide(value, precision, scale)
    if len(rounded.as_tuple().digits) > precision:  # 9999…9.99999 rounded up a digit
        return None, _too_wide(value, precision, scale)
    return rounded, None


def _too_wide(value: Decimal, precision: int, scale: int) -> str:
    whole = precision - scale
    return (
        f"{shown(value)} exceeds decimal({precision},{scale}): "
        f"at most {whole} digits before the point"
    )


def _exponent(value: Decimal) -> int:
    """``value.as_tuple().exponent`` of a finite value without building its digit tuple
    (every sink record has a dozen decimals): in plain notation, which ``str`` uses for every
    exponent from 0 down to ``-6 - digits``, the places after the point are the exponent."""
    text = str(value)
    if "E" in text or "e" in text:
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # only NaN and infinities carry a letter
        return exponent
    point = text.find(".")
    return 0 if point < 0 else point + 1 - len(text)


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored and published as text, or None."""
    if "\x00" in value:
        return "must not contain the NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (an unpaired surrogate)"
    return None


def int_problem(value: int) -> str | None:
    """Why ``value`` does not fit a 64-bit integer, or None."""
    if LONG_MIN <= value <= LONG_MAX:
        return None
    return f"{shown(value)} is outside the 64-bit integer range"


def datetime_problem(value: datetime) -> str | None:
    """Why ``value`` has no UTC instant the pipeline can write, or None."""
    if value.tzinfo is None:
        return None
    try:
        value.astimezone(UTC)
    except OverflowError:
        return f"{value.isoformat()} is out of range in UTC"
    return None


def _problems(value: Any, scale: int, where: str) -> list[str]:
    """Every bound ``value`` (a field's value, or an item of it) breaks, named by ``where``."""
    if value is None or isinstance(value, (bool, UUID)):
        return []
    if isinstance(value, Bounded):
        return []  # checked when it was built
    if isinstance(value, str):
        problem = text_problem(value)
    elif isinstance(value, int):
        problem = int_problem(value)
    elif isinstance(value, float):
        problem = (
            None
            if value == value and abs(value) != float("inf")
            else (f"{value} is not a finite number")
        )
    elif isinstance(value, Decimal):
        problem = fit_decimal(value, scale)[1]
    elif isinstance(value, datetime):
        problem = datetime_problem(value)
    elif isinstance(value, date):
        problem = None  # every date of Python's range fits Avro int/date and PostgreSQL
    elif isinstance(value, (tuple, list)):
        return [p for i, item in enumerate(value) for p in _problems(item, scale, f"{where}.{i}")]
    elif isinstance(value, dict):
        return [
            p
            for key, item in value.items()
            for p in (
                _problems(key, scale, f"{where} key")
                + _problems(item, scale, f"{where}.{shown(key, 20)}")
            )
        ]
    else:
        problem = None
    return [f"{where}: {problem}"] if problem else []


@cache
def _decimal_scales(model: type[BaseModel]) -> dict[str, int]:
    """Field -> Avro scale, for every field of ``model`` (only Decimal fields use it)."""
    return {name: decimal_scale(info) for name, info in model.model_fields.items()}


#: Field types whose validated values no bound can refuse (models were checked when built).
_UNBREAKABLE = (UUID, bool, date)


def _unbreakable(tp: Any) -> bool:
    """Whether every value pydantic validates for annotation ``tp`` passes :func:`_problems`
    (a UUID, a bool, a date, a clean literal, a model or a tuple of those)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return all(a is type(None) or _unbreakable(a) for a in args)
    if origin is typing.Annotated:
        return _unbreakable(args[0])
    if origin is typing.Literal:
        return not any(_problems(a, DEFAULT_SCALE, "") for a in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _unbreakable(args[0])
    if not isinstance(tp, type) or origin is not None:
        return False
    # Exact types: a datetime is a date, and its instant can be out of range.
    return tp in _UNBREAKABLE or issubclass(tp, BaseModel)


@cache
def _checked_fields(model: type[BaseModel]) -> tuple[tuple[str, int], ...]:
    """(field, Avro scale) of the fields of ``model`` a value can break a bound of; the
    others are skipped per instance (most fields are references, flags and lines)."""
    scales = _decimal_scales(model)
    return tuple(
        (name, scales[name])
        for name, info in model.model_fields.items()
        if not _unbreakable(info.annotation)
    )


def _plainly_fits(value: Any) -> bool:
    """A cheap yes for the common values within every bound; False means "ask
    :func:`_problems`", which decides and says why."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or not _SURROGATE.search(value))
    if kind is int:
        return LONG_MIN <= value <= LONG_MAX
    if kind is datetime:
        # Any offset is under a day: only the first and last years can leave UTC's range.
        return value.tzinfo is None or 1 < value.year < 9999
    if kind is dict:
        return all(_plainly_fits(k) and _plainly_fits(v) for k, v in value.items())
    if kind is tuple:
        return all(_plainly_fits(v) for v in value)
    return value is None


class Bounded(BaseModel):
    """A model whose every value fits the pipeline's Avro schemas and PostgreSQL tables
    (see the module docstring). Building one out of bounds raises :class:`OutOfBounds`."""

    @model_validator(mode="after")
    def _within_bounds(self) -> Bounded:
        problems: list[str] = []
        values = self.__dict__
        for name, scale in _checked_fields(type(self)):
            value = values.get(name)
            if _plainly_fits(value):
                continue
            if isinstance(value, Decimal) and value.is_finite():
                rounded, reason = fit_decimal(value, scale)
                if reason is None:
                    if rounded is not value:
                        # Frozen model: set the rounded value once, while it is being built.
                        object.__setattr__(self, name, rounded)
                    continue
            problems.extend(_problems(value, scale, name))
        if problems:
            # Not a ValueError: pydantic would wrap that in a ValidationError, which the
            # sinks do not dead-letter. An InvalidRecord passes through to them as it is.
            raise OutOfBounds(f"{type(self).__name__}: {'; '.join(problems)}")
        return self
