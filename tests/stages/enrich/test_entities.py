"""Pure pieces of the enrichment: batch answers mapped back to commands (on the captured
real responses), entities and versions out of get answers, what counts as "gone"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.bitrix24.errors import (
    AccessDenied,
    InvalidRequest,
    MethodNotFound,
    ServerError,
    error_from_response,
)
from connectors.bitrix24.events import EventRef
from mmstream.errors import PermanentError
from stages.enrich.entities import digest, entity_of, get_command, is_gone, version_of
from stages.enrich.fetch import split_batch
from stages.enrich.poller import parse_entities

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "bitrix24_rest"


def answer(name: str):
    return json.loads((FIXTURES / name).read_text("utf-8"))["result"]


def ref(entity: str, ident: str = "5", type_id: str | None = None) -> EventRef:
    return EventRef(entity, ident, "UPDATE", "X", type_id)


def test_errors_as_a_list_cannot_be_matched_to_commands():
    # The real answer: one command answered (key "35943"), two failed, errors as a LIST.
    split = split_batch(answer("crm_get_batch_mix_success_and_errors.json"), ["0", "1", "35943"])
    assert split.results == {"35943": {"ID": "35943"}}
    assert split.errors == {}
    assert [e["error_description"] for e in split.unmatched_errors] == [
        "ID is not defined or invalid.",
        "Not found",
    ]


def test_all_failed_numbered_commands():
    split = split_batch(answer("crm_get_batch_of_two_error.json"), ["0", "1"])
    assert (split.results, split.errors, len(split.unmatched_errors)) == ({}, {}, 2)


def test_numbered_results_map_by_position_and_named_errors_by_key():
    numbered = split_batch({"result": [{"ID": "1"}, {"ID": "2"}], "result_error": []}, ["0", "1"])
    assert numbered.results == {"0": {"ID": "1"}, "1": {"ID": "2"}}
    named = split_batch(
        {
            "result": {"c0": {"ID": "1"}},
            "result_error": {"c1": {"error": "", "error_description": "Not found"}},
        },
        ["c0", "c1", "c2"],
    )
    assert named.results == {"c0": {"ID": "1"}}
    assert named.errors == {"c1": {"error": "", "error_description": "Not found"}}
    # A list of results cannot be placed when the keys were named: nothing is guessed.
    assert split_batch({"result": [{"ID": "1"}]}, ["c0"]).results == {}


def test_get_commands():
    assert get_command(ref("deal", "42")) == "crm.deal.get?id=42"
    assert get_command(ref("item", "24", "1220")) == "crm.item.get?entityTypeId=1220&id=24"
    assert get_command(ref("task", "8618")) == "tasks.task.get?taskId=8618"
    assert get_command(ref("product", "9")) == "catalog.product.get?id=9"


def test_entities_and_versions_out_of_answers():
    deal = {"ID": "5", "TITLE": "x", "DATE_MODIFY": "2026-01-01T10:00:00+03:00"}
    assert entity_of(ref("deal"), deal) == deal
    assert version_of(ref("deal"), deal) == "2026-01-01T10:00:00+03:00"
    item = answer("crm_item_add.json")["result"]["order0000000000"]
    assert entity_of(ref("item", "247", "133"), item)["id"] == 247
    assert version_of(ref("item", "247", "133"), item["item"]) == "2024-05-21T15:14:27+03:00"
    task = {"task": {"id": "8618", "changedDate": "2022-06-12T15:10:15+03:00"}}
    assert version_of(ref("task"), entity_of(ref("task"), task)) == "2022-06-12T15:10:15+03:00"
    assert entity_of(ref("task"), []) is None  # tasks.task.get: [] when the task is gone
    assert entity_of(ref("product"), {"product": None}) is None
    assert version_of(ref("deal"), {"ID": "5"}) == ""
    with pytest.raises(PermanentError):
        entity_of(ref("deal"), "<html>maintenance</html>")


def test_digest_ignores_key_order_but_not_values():
    assert digest({"a": 1, "b": "я"}) == digest({"b": "я", "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


@pytest.mark.parametrize(
    ("error", "gone"),
    [
        (InvalidRequest(400, "", "Not found"), True),
        (InvalidRequest(400, "NOT_FOUND", "Элемент не найден"), True),
        (InvalidRequest(400, "", "product does not exist."), True),
        (error_from_response(400, {"error": "", "error_description": "Not found"}), True),
        (InvalidRequest(400, "", "ID is not defined or invalid."), False),
        (AccessDenied(403, "ACCESS_DENIED", "Access denied"), False),
        (MethodNotFound(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"), False),
        (ServerError(500, "INTERNAL_SERVER_ERROR", "Not found"), False),
        (ValueError("not found"), False),
    ],
)
def test_what_counts_as_gone(error, gone):
    assert is_gone(error) is gone


def test_poll_entity_names():
    assert parse_entities(["deal", "task", "item:128", "product"]) == [
        ("deal", None),
        ("task", None),
        ("item", "128"),
        ("product", None),
    ]
    for bad in ("invoice", "item", "item:x", "deal:2"):
        with pytest.raises(ValueError):
            parse_entities([bad])
