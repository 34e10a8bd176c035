"""raw.onec.result (1С's answers to the middleware's writes) -> versions of the instant order
or return the write was for."""

from __future__ import annotations

from uuid import UUID

import pytest

from mmstream.models.instant_order import InstantOrder
from mmstream.models.return_ import Return
from stages.normalize import onec_result
from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_result import normalize
from stages.normalize.registry import Context, normalizers

ORDER_ID = "0f6b1d2c-8a3e-4c5f-9b7a-1e2d3c4b5a69"
DOC = "5D1B6A3E-2F4C-11EF-8A6B-000C29B45B09"
CTX = Context()


def answer(entity: str = "instant_order", **fields) -> dict:
    """An answer as stages/egress/courier_documents.result_value publishes it."""
    return {
        "entity": entity,
        "id": ORDER_ID,
        "status": "recorded",
        "idempotency_key": f"{entity}:{ORDER_ID}",
        "operation": entity,
        "answered_at": "2024-06-03T12:30:01",
        "document": {
            "type": "Document_ЗаказКлиента",
            "ref_key": DOC,
            "number": "ЗК-000777",
            "date": "2024-06-03T12:30:00",
            "posted": True,
        },
        **fields,
    }


def test_raw_onec_result_is_normalized_here():
    assert normalizers()["raw.onec.result"] is onec_result.normalize


def test_an_instant_order_answer_is_1c_document_then_middleware_status():
    onec, middleware = normalize(answer(), {}, CTX)
    key = f"instant_order:{ORDER_ID}:{UUID(DOC)}:posted"
    assert isinstance(onec, InstantOrder) and isinstance(middleware, InstantOrder)
    assert onec.id == middleware.id == UUID(ORDER_ID)
    assert onec.source == "onec" and onec.version == key
    assert onec.external_ids == {"onec": str(UUID(DOC))}
    assert onec.onec_document_id == UUID(DOC)
    assert onec.onec_document_kind == "Document_ЗаказКлиента"
    assert onec.onec_number == "ЗК-000777" and onec.onec_posted is True
    assert middleware.source == "middleware" and middleware.status == "recorded"
    assert middleware.version == f"{key}:recorded"


def test_an_unposted_document_is_named_written_and_not_posted():
    value = answer()
    value["document"] = {**value["document"], "posted": "true"}  # only JSON true is posted
    onec, _ = normalize(value, {}, CTX)
    assert onec.onec_posted is False and onec.version.endswith(":written")


def test_a_missing_status_means_recorded():
    _, middleware = normalize(answer(status=None), {}, CTX)
    assert middleware.status == "recorded"


def test_a_return_answer_gives_only_the_middleware_status():
    # 1С's own record of the return carries its header and lines; a partial 1С version
    # here would blank them.
    versions = normalize(answer("return"), {}, CTX)
    assert [(type(v), v.source, v.status) for v in versions] == [(Return, "middleware", "recorded")]


def test_the_same_answer_twice_gives_the_same_versions():
    # 1С replays the first answer for a repeated Idempotency-Key: a duplicate, not a change.
    first = normalize(answer(answered_at="2024-06-03T12:30:01"), {}, CTX)
    again = normalize(answer(answered_at="2024-06-03T12:45:00"), {}, CTX)
    assert first == again


def test_another_document_is_another_version():
    other = answer()
    other["document"] = {**other["document"], "ref_key": "6e2c7b4f-3a5d-11ef-8a6b-000c29b45b09"}
    assert normalize(other, {}, CTX)[0].version != normalize(answer(), {}, CTX)[0].version


@pytest.mark.parametrize(
    "value,field",
    [
        (answer(id="deal:42"), "id"),
        (answer(id=None), "id"),
        (answer(document=None), "document"),
        (answer(document="Document_ЗаказКлиента"), "document"),
        (answer(idempotency_key=""), "idempotency_key"),
        (answer(document={"type": "Document_ЗаказКлиента", "ref_key": "x"}), "ref_key"),
        (answer(document={"type": "Document_ЗаказКлиента"}), "ref_key"),
        (answer("cash_receipt"), "entity"),
        (answer(""), "entity"),
    ],
)
def test_an_answer_missing_what_tells_it_apart_is_unnormalizable(value, field):
    with pytest.raises(Unnormalizable, match=field):
        normalize(value, {}, CTX)
