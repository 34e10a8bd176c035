"""The bounds every canonical value is checked against (mmstream.models.bounds): exactly
what the committed Avro schemas and the PostgreSQL columns carry."""

from __future__ import annotations

import io
import json
import types
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from mmstream.errors import InvalidRecord
from mmstream.models.bounds import (
    DECIMAL_PRECISION,
    LONG_MAX,
    LONG_MIN,
    Bounded,
    OutOfBounds,
    _exponent,
    _problems,
    _unbreakable,
    datetime_problem,
    decimal_scale,
    fit_decimal,
    int_problem,
    text_problem,
)
from mmstream.models.catalog import entity_models
from mmstream.models.counterparty import Contract, Counterparty
from mmstream.models.customer_order import CustomerOrder
from mmstream.models.lines import GoodsLine, PaymentLine
from mmstream.models.price_type import PriceType
from mmstream.models.product import Product
from tests.mmstream.samples import sample

AVRO = Path(__file__).resolve().parents[3] / "avro"
ID = UUID("2528e58f-e921-11ea-8591-000c29b45b09")


def _writes(avro_type: object, value: object) -> bool:
    schema = fastavro.parse_schema(
        {"type": "record", "name": "R", "fields": [{"name": "x", "type": avro_type}]}
    )
    try:
        fastavro.schemaless_writer(io.BytesIO(), schema, {"x": value})
    except (ValueError, OverflowError, ArithmeticError, UnicodeEncodeError):
        return False
    return True


def _decimal_type(scale: int) -> dict:
    return {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": DECIMAL_PRECISION,
        "scale": scale,
    }


# --- decimals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scale, largest", [(4, "9999999999999999.9999"), (2, "999999999999999999.99")]
)
def test_the_largest_decimal_of_a_scale_fits_and_one_more_unit_does_not(scale, largest):
    top = Decimal(largest)
    assert fit_decimal(top, scale) == (top, None)
    assert fit_decimal(-top, scale) == (-top, None)
    step = Decimal(1).scaleb(-scale)
    value, reason = fit_decimal(top + step, scale)
    assert value is None
    assert reason == (
        f"{top + step} exceeds decimal(20,{scale}): at most {20 - scale} digits before the point"
    )


def test_rounding_up_past_the_precision_is_refused():
    # Fewer whole digits than the bound, but rounding to the scale carries into one more.
    assert fit_decimal(Decimal("9999999999999999.99995"), 4)[0] is None


@pytest.mark.parametrize(
    "raw, scale, kept",
    [
        ("12.5", 4, "12.5"),  # no more places than the scale: unchanged, exactly
        ("1.23456", 4, "1.2346"),  # rounded half-even, as the Avro writer did
        ("1.005", 2, "1.00"),
        ("1E-300", 4, "0.0000"),  # tiny: zero at the scale (PostgreSQL numeric keeps
        ("1E-999999999", 2, "0.00"),  # at most 16383 places)
        ("0E+1000", 4, "0E+1000"),  # zero is zero, whatever its exponent
        ("0E-50", 2, "0.00"),
    ],
)
def test_places_beyond_the_scale_are_rounded(raw, scale, kept):
    value, reason = fit_decimal(Decimal(raw), scale)
    assert reason is None and str(value) == kept


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("NaN", "NaN is not a finite number"),
        ("-Infinity", "-Infinity is not a finite number"),
        ("1E+300", "1E+300 exceeds decimal(20,4): at most 16 digits before the point"),
        ("1E+999999999", "1E+999999999 exceeds decimal(20,4)"),
    ],
)
def test_non_finite_and_huge_decimals_say_why(raw, reason):
    assert fit_decimal(Decimal(raw), 4)[1].startswith(reason)


@settings(max_examples=300, deadline=None)
@given(
    value=st.decimals(allow_nan=True, allow_infinity=True)
    | st.builds(
        lambda digits, exp: Decimal(digits).scaleb(exp),
        st.integers(-(10**25), 10**25),
        st.integers(-40, 30),
    ),
    scale=st.sampled_from([2, 4]),
)
def test_a_decimal_fits_exactly_when_fastavro_writes_it(value, scale):
    rounded, reason = fit_decimal(value, scale)
    if reason is None:
        assert _writes(_decimal_type(scale), rounded.quantize(Decimal(1).scaleb(-scale)))
    else:
        assert rounded is None and reason
        if value.is_finite() and value.adjusted() < 20:  # quantize needs <= 28 digits
            assert not _writes(_decimal_type(scale), value.quantize(Decimal(1).scaleb(-scale)))


# --- integers, text, datetimes ---------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([LONG_MIN, LONG_MAX, LONG_MIN - 1, LONG_MAX + 1])
)
def test_an_int_fits_exactly_when_it_is_an_avro_long(value):
    assert (int_problem(value) is None) == _writes("long", value)


def test_int_reason_never_prints_a_huge_number():
    assert int_problem(10**5000) == "an integer of 16610 bits is outside the 64-bit integer range"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=20))
def test_text_fits_when_utf8_encodable_and_without_nul(value):
    problem = text_problem(value)
    assert (problem is None) == ("\x00" not in value and _writes("string", value))


@pytest.mark.parametrize(
    "value, reason",
    [
        ("a\x00b", "must not contain the NUL character"),
        ("\ud800", "is not valid Unicode (an unpaired surrogate)"),
    ],
)
def test_text_reasons(value, reason):
    assert text_problem(value) == reason


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        timezones=st.none()
        | st.timezones()
        | st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439))
    )
)
def test_a_datetime_fits_when_it_has_a_utc_instant(value):
    problem = datetime_problem(value)
    if problem is None:
        assert _writes({"type": "long", "logicalType": "timestamp-micros"}, value)
        if value.tzinfo is not None:
            value.astimezone(UTC)  # what the database driver does
    else:
        assert "out of range in UTC" in problem


# --- the models ------------------------------------------------------------------------


def _nested_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    out = set()
    for info in model.model_fields.values():
        for arg in typing.get_args(info.annotation) or (info.annotation,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out |= {arg} | _nested_models(arg)
    return out


def test_every_model_and_every_line_model_is_bounded():
    models = [*entity_models().values(), Product]
    for model in models:
        for checked in {model, *_nested_models(model)}:
            assert issubclass(checked, Bounded), checked.__name__


def test_an_out_of_bounds_entity_cannot_be_built():
    with pytest.raises(OutOfBounds) as caught:
        PriceType(
            id=ID, source="onec", version="v", name="Оптовая", markup_percent=Decimal("1E+300")
        )
    assert isinstance(caught.value, InvalidRecord)  # the sinks dead-letter it
    assert str(caught.value) == (
        "PriceType: markup_percent: 1E+300 exceeds decimal(20,4): "
        "at most 16 digits before the point"
    )


def test_every_problem_of_an_entity_is_named():
    with pytest.raises(OutOfBounds) as caught:
        Counterparty(
            id=ID,
            source="onec",
            version="v",
            name="a\x00",
            phones=("ok", "\ud800"),
            external_ids={"onec": "\x00"},
            source_stamp=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=3))),
        )
    message = str(caught.value)
    for part in (
        "name: must not contain the NUL",
        "phones.1: is not valid Unicode",
        "external_ids.onec: must not contain",
        "source_stamp: 0001-01-01T00:00:00+03:00",
    ):
        assert part in message, message


@pytest.mark.parametrize(
    "build",
    [
        lambda: GoodsLine(section="Товары", line_number=1, quantity=Decimal("1e17")),
        lambda: GoodsLine(section="Товары", line_number=2**63),
        lambda: PaymentLine(line_number=1, amount=Decimal("1e18")),
        lambda: Contract(id=ID, name="\ud800"),
        lambda: Product(id=ID, source="onec", version="v", name="\ud800"),
        lambda: CustomerOrder(
            id=ID,
            source="onec",
            version="v",
            lines=[{"section": "Товары", "line_number": 1, "price": "1e17"}],
        ),
    ],
)
def test_lines_contracts_and_products_are_bounded_too(build):
    with pytest.raises(InvalidRecord):
        build()


def test_nan_is_refused_by_the_decimal_type_itself():
    # pydantic's Decimal refuses NaN and Infinity (allow_inf_nan is off for decimals); the
    # normalizers refuse them earlier under the source field name (oddities.decimal).
    with pytest.raises(ValidationError, match="finite number"):
        GoodsLine(section="Товары", line_number=1, price=Decimal("NaN"))


def test_the_model_keeps_what_avro_publishes():
    line = GoodsLine(
        section="Товары",
        line_number=1,
        quantity=Decimal("2.5"),
        price=Decimal("1.23456"),
        amount=Decimal("3.086"),
    )
    assert (str(line.quantity), str(line.price), str(line.amount)) == ("2.5", "1.2346", "3.09")


def test_the_relay_reading_a_stored_row_back_is_bounded_too():
    # The relay rebuilds the entity from its row (model_validate): a row written before the
    # bounds existed is refused there as InvalidRecord rather than by fastavro.
    row = json.loads(PriceType(id=ID, source="onec", version="v", name="x").model_dump_json())
    with pytest.raises(OutOfBounds, match="markup_percent"):
        PriceType.model_validate({**row, "markup_percent": "1e300"})


def _decimals(node: object) -> list[dict]:
    if isinstance(node, dict):
        own = [node] if node.get("logicalType") == "decimal" else []
        return own + [d for v in node.values() for d in _decimals(v)]
    if isinstance(node, list):
        return [d for v in node for d in _decimals(v)]
    return []


def test_every_decimal_of_every_committed_schema_has_the_precision_the_bound_uses():
    found = [
        d
        for path in AVRO.glob("*.avsc")
        for d in _decimals(json.loads(path.read_text(encoding="utf-8")))
    ]
    assert found and {d["precision"] for d in found} == {DECIMAL_PRECISION}
    assert {d["scale"] for d in found} == {2, 4}


# --- the per-model check plan ------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_the_exponent_read_from_the_text_is_the_decimals_own(value):
    assert _exponent(value) == value.as_tuple().exponent


_BAD_TEXT = ("a\x00b", "\ud800", "Склад \udfff", "ok", "Склад №1", "")
_BAD_MOMENTS = (
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=3))),
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-3))),
    datetime(1, 1, 1, 5, tzinfo=UTC),
    datetime(2, 1, 1, tzinfo=timezone(timedelta(hours=23))),
    datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=3))),
    datetime(2026, 1, 2),
)
_BAD_NUMBERS = (
    Decimal("1E+300"),
    Decimal("-1E+16"),
    Decimal("9999999999999999.99999"),
    Decimal("1.23456789"),
    Decimal("0E-10"),
    Decimal("12.5"),
    Decimal("1E+2"),
)


def _poison(tp: object) -> tuple:
    """Values pydantic validates for annotation ``tp`` that are near or past a bound."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or type(tp) is types.UnionType:
        return tuple(v for a in args if a is not type(None) for v in _poison(a))
    if origin is tuple:
        return tuple((v, "ok") for v in _poison(args[0])) + ((),)
    if origin is dict:
        return tuple({k: "v"} for k in _BAD_TEXT) + tuple({"k": v} for v in _BAD_TEXT)
    kinds = {str: _BAD_TEXT, int: (2**63, -(2**63) - 1, 2**63 - 1, 0), Decimal: _BAD_NUMBERS}
    kinds[datetime] = _BAD_MOMENTS
    return kinds.get(tp, ())  # type: ignore[call-overload]


def _reference_check(model: type[BaseModel], values: dict) -> tuple[list[str], dict]:
    """The check as written before its per-model plan: every field, every value."""
    problems, rounded = [], {}
    for name, info in model.model_fields.items():
        value, scale = values.get(name), decimal_scale(info)
        if isinstance(value, Decimal) and value.is_finite():
            fit, reason = fit_decimal(value, scale)
            if reason is None:
                rounded[name] = fit
                continue
        problems.extend(_problems(value, scale, name))
    return problems, rounded


def test_the_plan_finds_what_checking_every_field_finds_for_every_model():
    models = {m for e in entity_models().values() for m in {e, *_nested_models(e)}}
    checked = 0
    for model in sorted(models, key=lambda m: m.__name__):
        base = sample(model).__dict__
        for name, info in model.model_fields.items():
            for bad in _poison(info.annotation):
                values = {**base, name: bad}
                problems, rounded = _reference_check(model, values)
                if problems:
                    with pytest.raises(OutOfBounds) as caught:
                        model(**values)
                    assert str(caught.value) == f"{model.__name__}: {'; '.join(problems)}"
                else:
                    built = model(**values)
                    for field, fit in rounded.items():
                        assert str(getattr(built, field)) == str(fit), (model, field)
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    ("annotation", "skipped"),
    [
        (UUID | None, True),
        (bool, True),
        (date | None, True),
        (datetime | None, False),
        (typing.Literal["onec", "bitrix24"], True),
        (typing.Literal["ok", "\x00"], False),
        (tuple[GoodsLine, ...], True),
        (tuple[str, ...], False),
        (dict[str, str], False),
        (str, False),
        (Decimal | None, False),
        (typing.Any, False),
    ],
)
def test_only_fields_no_value_can_break_are_left_out_of_the_plan(annotation, skipped):
    assert _unbreakable(annotation) is skipped
