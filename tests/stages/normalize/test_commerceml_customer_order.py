"""CommerceML orders (2.10 root documents, 3.x containers) -> CustomerOrder: the buyer's
comment kept without the XML indentation, the currency as an ISO code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.commerceml.document import records
from stages.normalize.commerceml_customer_order import free_text
from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_customer_order import normalize
from stages.normalize.registry import Context

LAYOUTS = Path(__file__).resolve().parents[2] / "fixtures" / "commerceml"
CTX = Context()


def _orders(name: str) -> list[dict]:
    with (LAYOUTS / name).open("rb") as stream:
        return [json.loads(r.value()) for r in records(stream) if r.entity == "customer_order"]


def test_a_multiline_comment_keeps_its_lines_not_its_indentation():
    (order,) = normalize(_orders("cml210_orders.xml")[0], {}, CTX)
    assert order.comment == "Позвонить за час до доставки.\nДомофон не работает, код 15"
    assert order.currency == "RUB" and order.number == "ТД00-000123"
    assert order.lines[0].content == "Клавиатура проводная"


def test_3x_container_orders_normalize():
    first, second = (normalize(r, {}, CTX)[0] for r in _orders("cml3_orders.xml"))
    assert (first.comment, first.currency) == ("Оставить у двери", "RUB")
    assert second.currency == "RUB"  # sent as 643


def test_the_comment_as_a_requisite_when_the_element_is_empty():
    record = {
        **_orders("cml3_orders.xml")[1],
        "comment": "",
        "requisites": [{"name": "Комментарий покупателя", "values": ["После 18:00"]}],
    }
    assert normalize(record, {}, CTX)[0].comment == "После 18:00"


def test_an_order_in_an_unknown_currency_is_refused():
    record = {**_orders("cml3_orders.xml")[0], "currency": "у.е."}
    with pytest.raises(Unnormalizable, match="currency"):
        normalize(record, {}, CTX)


def test_free_text_drops_blank_lines_and_indentation():
    assert free_text("\n\t\t a  b \n\n\t c\n") == "a b\nc"
