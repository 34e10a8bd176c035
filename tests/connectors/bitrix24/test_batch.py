"""The batch packer's pure parts: command encoding, mapping answers back per command (real
captured answers included). Create-or-update by external key is the egress actions'
(tests/stages/egress/test_bitrix24_master.py, test_bitrix24_product.py, test_relink.py)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from connectors.bitrix24.batch import (
    Command,
    Failed,
    Ok,
    UnmatchedCommand,
    encode_query,
    map_results,
)
from connectors.bitrix24.errors import (
    AccessDenied,
    InvalidRequest,
    OperationTimeLimit,
    QueryLimitExceeded,
)
from devstack.emulators.bitrix24.php import php_parse


def get(ident) -> Command:
    return Command("crm.deal.get", {"id": ident})


# ---- encoding ----------------------------------------------------------------------------


def test_query_encoding_round_trips_through_php_parsing():
    params = {
        "select": ["id", "iblockId"],
        "filter": {"iblockId": 14, "xmlId": "a&b=c d/é"},
        "order": {"id": "ASC"},
        "skip": None,
        "flag": True,
    }
    query = encode_query(params)
    assert "skip" not in query
    parsed = php_parse(parse_qsl(query, keep_blank_values=True))
    assert parsed == {
        "select": ["id", "iblockId"],
        "filter": {"iblockId": "14", "xmlId": "a&b=c d/é"},
        "order": {"id": "ASC"},
        "flag": "1",
    }


def test_command_text_is_method_and_query():
    assert Command("crm.deal.get", {"id": 5}).text() == "crm.deal.get?id=5"
    assert Command("server.time").text() == "server.time"


# ---- mapping answers back ----------------------------------------------------------------


def test_real_mix_of_success_and_list_errors(rest_fixture):
    answer = rest_fixture("crm_get_batch_mix_success_and_errors.json")["result"]
    commands = {"35943": get(35943), "bad": get(0), "gone": get(999999)}
    out = map_results(answer, commands)
    assert out["35943"] == Ok({"ID": "35943"})
    # Two commands without a result and two errors without codes: both failed, both with a
    # permanent refusal, though which text is whose cannot be told.
    for name in ("bad", "gone"):
        assert isinstance(out[name], Failed)
        err = out[name].error
        assert isinstance(err, InvalidRequest) and not err.retriable
        assert "ID is not defined or invalid." in err.description
        assert "Not found" in err.description
        assert err.method == "crm.deal.get"


def test_real_batch_of_two_errors(rest_fixture):
    answer = rest_fixture("crm_get_batch_of_two_error.json")["result"]
    out = map_results(answer, {"0": get(0), "1": get(999999)})
    assert all(isinstance(o, Failed) and isinstance(o.error, InvalidRequest) for o in out.values())


def test_list_errors_of_one_class_other_than_invalid_request_fail_each_command():
    # Two refusals for two commands without a result: each failed with that class, and is
    # not "not found" (the flag exists on every Bitrix24 error, only InvalidRequest sets it).
    answer = {
        "result": {"a": {"ID": "1"}},
        "result_error": [
            {"error": "ACCESS_DENIED", "error_description": "Access denied"},
            {"error": "ACCESS_DENIED", "error_description": "Access denied"},
        ],
    }
    out = map_results(answer, {"a": get(1), "b": get(2), "c": get(3)})
    for name in ("b", "c"):
        err = out[name].error
        assert isinstance(err, AccessDenied) and not err.not_found


def test_list_errors_of_different_classes_stay_unmatched():
    answer = {
        "result": {"a": {"ID": "1"}},
        "result_error": [
            {"error": "", "error_description": "Not found"},
            {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"},
        ],
    }
    out = map_results(answer, {"a": get(1), "b": get(2), "c": get(3)})
    assert isinstance(out["a"], Ok)
    for name in ("b", "c"):
        err = out[name].error
        # Retrying is safe and needed: one of them was only rate limited.
        assert isinstance(err, UnmatchedCommand) and err.retriable
        assert "Not found" in err.description


def test_fewer_errors_than_commands_without_result_is_unmatched():
    answer = {"result": [], "result_error": [{"error": "", "error_description": "Not found"}]}
    out = map_results(answer, {"a": get(1), "b": get(2)})
    assert all(isinstance(o.error, UnmatchedCommand) for o in out.values())


def test_keyed_errors_are_matched_and_classified_by_code():
    answer = {
        "result": {"a": {"products": []}},
        "result_error": {
            "b": {"error": "OPERATION_TIME_LIMIT", "error_description": "slow"},
            "c": {"error": "", "error_description": "Not found"},
        },
        "result_total": {"a": 0},
        "result_next": [],
    }
    out = map_results(answer, {"a": get(1), "b": get(2), "c": get(3)})
    assert out["a"] == Ok({"products": []}, total=0)
    assert isinstance(out["b"].error, OperationTimeLimit) and out["b"].error.retriable
    assert isinstance(out["c"].error, InvalidRequest)


def test_numbered_commands_read_list_results_by_position():
    # PHP writes a map keyed 0..m-1 as a list: commands "0" and "1" succeeded, "2" failed.
    answer = {
        "result": [{"ID": "1"}, {"ID": "2"}],
        "result_error": {"2": {"error": "QUERY_LIMIT_EXCEEDED", "error_description": ""}},
        "result_next": [50],
    }
    out = map_results(answer, {"0": get(1), "1": get(2), "2": get(3)})
    assert out["0"] == Ok({"ID": "1"}, next=50) and out["1"] == Ok({"ID": "2"})
    assert isinstance(out["2"].error, QueryLimitExceeded)


def test_a_null_result_is_a_result():
    out = map_results({"result": {"a": None}, "result_error": []}, {"a": get(1)})
    assert out["a"] == Ok(None)


def test_an_answer_that_is_not_a_map_fails_every_command_retriably():
    out = map_results([], {"a": get(1), "b": get(2)})
    assert all(isinstance(o.error, UnmatchedCommand) for o in out.values())
