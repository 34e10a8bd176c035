"""Bitrix24's "no object with this id" answers, classified precisely per method family
(connectors/bitrix24/errors.py), and the emulator answering them the way the portal does."""

from __future__ import annotations

import asyncio
import pickle

import httpx
import pytest

from connectors.bitrix24.batch import Command, map_results
from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.errors import (
    AccessDenied,
    InvalidRequest,
    error_from_response,
    is_not_found,
)
from devstack.emulators.bitrix24 import create_app
from mmstream.settings import Bitrix24Settings


@pytest.mark.parametrize(
    ("method", "status", "error", "description", "gone"),
    [
        # catalog.product.update: code 0 with the controller's text, or the docs' Russian text.
        ("catalog.product.update", 400, "0", "product does not exist.", True),
        ("catalog.product.get", 400, "0", "Product does not exist.", True),
        (
            "catalog.product.update",
            400,
            "0",
            "Товар с указанным идентификатором не существует",
            True,
        ),
        # Code 0 is shared with other errors about things the product refers to.
        (
            "catalog.product.update",
            400,
            "0",
            "Ставка НДС с указанным идентификатором не существует",
            False,
        ),
        ("catalog.product.update", 400, "0", "Section does not exist", False),
        ("catalog.product.update", 400, "200040300040", "Access denied", False),
        # An add's "does not exist" is about what it refers to, never about the object itself.
        ("catalog.product.add", 400, "0", "product does not exist.", False),
        # catalog.store.update / catalog.priceType.update: their ErrorCode, whatever the text.
        ("catalog.store.update", 400, "201100000000", "Entity is not exists", True),
        (
            "catalog.store.update",
            400,
            "201100000000",
            "Склад с указанным идентификатором не найден",
            True,
        ),
        ("catalog.priceType.update", 400, "201000000000", "Entity is not exists", True),
        ("catalog.pricetype.update", 400, "201000000000", "", True),
        ("catalog.priceType.update", 400, "201100000000", "Entity is not exists", False),
        ("catalog.store.update", 400, "0", "Empty address", False),
        # catalog.price.update: code 0, "Price is not exists".
        ("catalog.price.update", 400, "0", "Price is not exists", True),
        ("catalog.price.update", 400, "0", "Required fields: price, currency", False),
        ("catalog.price.add", 400, "0", "Price is not exists", False),
        # Legacy CRM: an empty code and "Not found".
        ("crm.company.update", 400, "", "Not found", True),
        ("crm.contact.update", 400, "", "Not found", True),
        ("crm.company.get", 400, "", "Not found", True),
        ("crm.company.update", 400, "", "ID is not defined or invalid.", False),
        ("crm.company.update", 400, "NOT_FOUND", "Not found", False),
        ("crm.deal.productrows.get", 400, "", "Not found", False),
        # Not a 400: not the answer.
        ("crm.company.update", 500, "", "Not found", False),
        ("crm.company.update", None, "", "Not found", False),
        ("tasks.task.update", 400, "", "Not found", False),
    ],
)
def test_not_found_is_decided_per_method(method, status, error, description, gone):
    assert is_not_found(method, status, error, description) is gone


def test_a_not_found_answer_is_a_permanent_invalid_request_flagged_not_found():
    err = error_from_response(
        400, {"error": 201100000000, "error_description": "x"}, method="catalog.store.update"
    )
    assert type(err) is InvalidRequest and err.not_found and not err.retriable
    # The flag survives a process boundary (errors are pickled to the DLQ writer).
    assert pickle.loads(pickle.dumps(err)).not_found
    other = error_from_response(
        400, {"error": 0, "error_description": "Empty address"}, method="catalog.store.update"
    )
    assert type(other) is InvalidRequest and not other.not_found
    # The store's "no right to change it" is an access error, not bad input.
    denied = error_from_response(
        400, {"error": "200040300020", "error_description": "Access"}, method="catalog.store.update"
    )
    assert isinstance(denied, AccessDenied)


HOOK = "/rest/1/notfoundtest/"
BASE = "http://portal.test"


@pytest.mark.parametrize("pack", [False, True])
def test_the_emulator_answers_a_missing_object_as_the_portal_does(pack):
    """Every update of an id the portal does not have, alone and inside a ``batch``."""
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)
    calls = [
        ("catalog.product.update", {"id": 999, "fields": {"name": "x"}}),
        ("catalog.store.update", {"id": 999, "fields": {"title": "x"}}),
        ("catalog.priceType.update", {"id": 999, "fields": {"name": "x"}}),
        ("catalog.price.update", {"id": 999, "fields": {"price": 1}}),
        ("crm.company.update", {"id": 999, "fields": {"TITLE": "x"}}),
        ("crm.contact.update", {"id": 999, "fields": {"NAME": "x"}}),
    ]

    async def main():
        client = Bitrix24Client(
            Bitrix24Settings(webhook_url=BASE + HOOK, rate_per_s=1e6, burst=1000),
            transport=httpx.ASGITransport(app=app),
            pack=pack,
        )
        try:
            return await asyncio.gather(
                *(client.call(m, p) for m, p in calls), return_exceptions=True
            )
        finally:
            await client.aclose()

    outcomes = asyncio.run(main())
    assert all(type(o) is InvalidRequest and o.not_found for o in outcomes), outcomes
    assert [o.method for o in outcomes] == [m for m, _ in calls]


def test_batch_errors_keep_the_flag_only_when_it_is_certain():
    get = Command("crm.company.get", {"id": 0})
    # Errors matched to their commands by name.
    named = map_results(
        {
            "result": {},
            "result_error": {
                "a": {"error": "", "error_description": "Not found"},
                "b": {"error": "", "error_description": "ID is not defined or invalid."},
            },
        },
        {"a": get, "b": get},
    )
    assert named["a"].error.not_found and not named["b"].error.not_found
    # Errors the portal listed without names: which is whose cannot be told.
    same = map_results(
        {
            "result": [],
            "result_error": [
                {"error": "", "error_description": "Not found"},
                {"error": "", "error_description": "Not found"},
            ],
        },
        {"0": get, "1": get},
    )
    assert all(o.error.not_found for o in same.values())
    mixed = map_results(
        {
            "result": [],
            "result_error": [
                {"error": "", "error_description": "Not found"},
                {"error": "", "error_description": "ID is not defined or invalid."},
            ],
        },
        {"0": get, "1": get},
    )
    assert not any(o.error.not_found for o in mixed.values())
