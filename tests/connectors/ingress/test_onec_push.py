"""1С JSON push of every object of the four flows, through the real bridge, broker and
database: topics, keys and headers; per-record batch results; unknown objects; bad records;
exchange-plan message numbers (a re-sent message is answered and publishes nothing)."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections import defaultdict

import psycopg
import pytest

from connectors.onec import exchange
from connectors.onec.objects import OBJECTS, lookup
from mmstream.envelope import change_id, decode_headers
from mmstream.models.stock import stock_id
from tests.support.stack import FIXTURES, onec_product
from tests.support.topics import count_records

SHIPMENT = json.loads(
    (FIXTURES / "onec_odata" / "bp30_Document_RealizatsiyaTovarovUslug.json").read_text("utf-8")
)["value"][0]
PRINCIPAL = "onec-test"  # the token fixture's subject


def _auth(token: str, **headers: str | bytes) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def sample(name: str, **overrides) -> dict:
    """A valid record of the 1С object ``name``, with a fresh identity."""
    obj = lookup(name)
    if obj.entity == "product":
        record = onec_product()
    elif obj.kind == "document":
        record = copy.deepcopy(SHIPMENT)
        record["Ref_Key"] = str(uuid.uuid4())
    elif obj.accumulation:  # a balance row of ТоварыНаСкладах
        record = {
            "Склад_Key": str(uuid.uuid4()),
            "Номенклатура_Key": str(uuid.uuid4()),
            "Характеристика_Key": "00000000-0000-0000-0000-000000000000",
            "ВНаличииBalance": 7,
            "DataVersion": "AAAAAgAAAAA=",
        }
    elif obj.kind == "register":
        type_field = "ТипЦен_Key" if overrides.pop("ut103", False) else "ВидЦены_Key"
        record = {
            "Period": "2024-03-01T00:00:00",
            "Номенклатура_Key": str(uuid.uuid4()),
            type_field: str(uuid.uuid4()),
            "Цена": 990.0,
            "DataVersion": "AAAAAgAAAAA=",
        }
    else:
        record = {
            "Ref_Key": str(uuid.uuid4()),
            "DataVersion": "AAAAAQAAAAA=",
            "DeletionMark": False,
            "Code": "000000001",
            "Description": f"{name} 1",
            "ДополнительныеРеквизиты": [],
        }
    record.update(overrides)
    return record


def expected_key(record: dict) -> str:
    if "Ref_Key" in record:
        return record["Ref_Key"]
    if "Склад_Key" in record:
        return str(
            stock_id(uuid.UUID(record["Склад_Key"]), uuid.UUID(record["Номенклатура_Key"]), None)
        )
    price_type = record.get("ВидЦены_Key") or record["ТипЦен_Key"]
    return f"{record['Номенклатура_Key']}|00000000-0000-0000-0000-000000000000|{price_type}|{record['Period']}"


def topic_keys(settings, entity: str, expect: int = 0) -> list[str]:
    return [
        m.key().decode()
        for m in count_records(settings, f"raw.onec.{entity}", expect_at_least=expect, quiet_s=0)
    ]


def test_every_object_by_every_name_lands_on_its_topic(bridge, bridge_settings, token):
    """Each object by its 1С name (single post) and its OData entity set (batch post):
    the entity's raw topic, keyed by the 1С identity, with the CloudEvents headers."""
    sent: dict[str, dict[str, dict]] = defaultdict(dict)
    for obj in OBJECTS:
        one, other = sample(obj.name), sample(obj.name)
        resp = bridge.post(f"/v1/onec/{obj.name}", json=one, headers=_auth(token))
        assert resp.status_code == 202, resp.text
        assert (resp.json()["entity"], resp.json()["id"]) == (obj.entity, expected_key(one))
        resp = bridge.post(
            f"/v1/onec/{obj.odata_name}/batch", json={"value": [other]}, headers=_auth(token)
        )
        assert resp.status_code == 200, resp.text
        for record in (one, other):
            sent[obj.entity][expected_key(record)] = record
    for entity, records in sent.items():
        messages = count_records(
            bridge_settings, f"raw.onec.{entity}", expect_at_least=len(records), quiet_s=0
        )
        assert sorted(m.key().decode() for m in messages) == sorted(records), entity
        for msg in messages:
            key = msg.key().decode()
            headers = decode_headers(msg.headers())
            assert json.loads(msg.value()) == records[key]
            assert headers["ce_type"] == f"ru.mastermobile.onec.{entity}.v1"
            assert headers["ce_id"] == change_id(entity, key, records[key]["DataVersion"])
            assert headers["ce_source"] == f"/onec/{PRINCIPAL}"
            assert headers["ce_subject"] == key
            assert headers["ce_specversion"] == "1.0" and headers["x-request-id"]


@pytest.mark.parametrize(
    ("ut11", "ut103"),
    [
        ("ЗаказКлиента", "ЗаказПокупателя"),
        ("ВидыЦен", "ТипыЦенНоменклатуры"),
        ("ВозвратТоваровОтКлиента", "ВозвратТоваровОтПокупателя"),
    ],
)
def test_both_configurations_share_entity_and_key(bridge, bridge_settings, token, ut11, ut103):
    record = sample(ut11)
    assert bridge.post(f"/v1/onec/{ut11}", json=record, headers=_auth(token)).status_code == 202
    again = {**record, "DataVersion": "AAAAAwAAAAA="}
    assert bridge.post(f"/v1/onec/{ut103}", json=again, headers=_auth(token)).status_code == 202
    entity = lookup(ut11).entity
    assert topic_keys(bridge_settings, entity, 2) == [record["Ref_Key"]] * 2


def test_prices_of_both_configurations_share_a_key(bridge, bridge_settings, token):
    ut11 = sample("ЦеныНоменклатуры")
    ut103 = {
        **{k: v for k, v in ut11.items() if k != "ВидЦены_Key"},
        "ТипЦен_Key": ut11["ВидЦены_Key"],
        "DataVersion": "AAAAAwAAAAA=",
    }
    for record in (ut11, ut103):
        assert (
            bridge.post("/v1/onec/ЦеныНоменклатуры", json=record, headers=_auth(token)).status_code
            == 202
        )
    assert topic_keys(bridge_settings, "price", 2) == [expected_key(ut11)] * 2


def test_batch_results_per_record(bridge, bridge_settings, token):
    good = [sample("ЗаказКлиента"), sample("ЗаказКлиента")]
    bad = sample("ЗаказКлиента", Date="2024-01-01T10:00:00Z")
    resp = bridge.post(
        "/v1/onec/ЗаказКлиента/batch", json=[good[0], bad, good[1], "x"], headers=_auth(token)
    )
    assert resp.status_code == 207, resp.text
    body = resp.json()
    assert (body["accepted"], body["rejected"], body["entity"]) == (2, 2, "customer_order")
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
    ]
    assert body["results"][1]["error"]["details"][0]["field"] == "Date"
    assert body["results"][3]["error"]["code"] == "validation_failed"
    assert body["results"][2]["event_id"] == change_id(
        "customer_order", good[1]["Ref_Key"], good[1]["DataVersion"]
    )
    resp = bridge.post("/v1/onec/ЗаказКлиента/batch", json={"value": [bad]}, headers=_auth(token))
    assert resp.status_code == 422 and resp.json()["accepted"] == 0
    assert sorted(topic_keys(bridge_settings, "customer_order", 2)) == sorted(
        r["Ref_Key"] for r in good
    )


def test_batch_limits(bridge, bridge_settings, token):
    too_many = [sample("Склады") for _ in range(bridge_settings.ingress.max_batch_records + 1)]
    resp = bridge.post("/v1/onec/Склады/batch", json=too_many, headers=_auth(token))
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "batch_too_large"
    resp = bridge.post("/v1/onec/Склады/batch", json={"value": []}, headers=_auth(token))
    assert resp.status_code == 422


def test_unknown_object_is_404_naming_the_accepted_names(bridge, token):
    for url in ("/v1/onec/Catalog_НетТакого", "/v1/onec/НетТакого/batch"):
        resp = bridge.post(url, json=sample("Склады"), headers=_auth(token))
        assert resp.status_code == 404, resp.text
        error = resp.json()["error"]
        assert error["code"] == "unknown_object"
        assert "НетТакого" in error["message"] and "ЗаказПокупателя" in error["message"]
        assert "Document_ЗаказКлиента" in error["details"][0]["accepted"]


def test_unknown_object_needs_a_token_first(bridge):
    assert bridge.post("/v1/onec/НетТакого", json={}).status_code == 401


def test_invalid_records_publish_nothing(bridge, bridge_settings, token):
    bad = {
        "РеализацияТоваровУслуг": sample("РеализацияТоваровУслуг", Posted="да"),
        "ПриходныйКассовыйОрдер": sample("ПриходныйКассовыйОрдер", Date="0001-01-01T00:00:00"),
        "Контрагенты": sample("Контрагенты", Ref_Key="00000000-0000-0000-0000-000000000000"),
        "ЦеныНоменклатуры": sample("ЦеныНоменклатуры", ВидЦены_Key=None),
        "АвансовыйОтчет": {**sample("АвансовыйОтчет"), "Товары": [{"LineNumber": 1}]},
    }
    for name, record in bad.items():
        record = {k: v for k, v in record.items() if v is not None}
        resp = bridge.post(f"/v1/onec/{name}", json=record, headers=_auth(token))
        assert resp.status_code == 422, resp.text
        assert (
            resp.json()["error"]["code"] == "validation_failed" and resp.json()["error"]["details"]
        )
    good = sample("РеализацияТоваровУслуг")
    assert (
        bridge.post("/v1/onec/РеализацияТоваровУслуг", json=good, headers=_auth(token)).status_code
        == 202
    )
    assert topic_keys(bridge_settings, "shipment", 1) == [good["Ref_Key"]]
    for entity in ("cash_receipt", "counterparty", "price", "advance_report"):
        assert topic_keys(bridge_settings, entity) == [], entity


# -- exchange-plan message numbers ----------------------------------------------------------


def _message(token: str, node: str = "ЦБ", number: int = 7) -> dict:
    return _auth(
        token, **{exchange.NODE_HEADER: node.encode(), exchange.NUMBER_HEADER: str(number)}
    )


def test_resent_message_is_acknowledged_and_publishes_nothing(bridge, bridge_settings, token):
    records = [sample("Номенклатура"), sample("Номенклатура", Ref_Key="bad")]
    first = bridge.post(
        "/v1/onec/Catalog_Номенклатура/batch", json=records, headers=_message(token)
    )
    assert first.status_code == 207, first.text
    assert first.json()["duplicate_message"] is False
    again = bridge.post(
        "/v1/onec/Catalog_Номенклатура/batch", json=records, headers=_message(token)
    )
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["duplicate_message"] is True
    assert body["results"] == first.json()["results"]
    assert body["original_request_id"] == first.json()["request_id"] != body["request_id"]
    assert topic_keys(bridge_settings, "product", 1) == [records[0]["Ref_Key"]]
    rows = _sql(
        bridge_settings, "SELECT principal, node, message_no, object FROM onec_exchange_message"
    )
    assert rows == [(PRINCIPAL, "ЦБ", 7, "Номенклатура")]


def test_message_numbers_are_per_node_and_object(bridge, bridge_settings, token):
    product, other_node, warehouse = (
        sample("Номенклатура"),
        sample("Номенклатура"),
        sample("Склады"),
    )
    assert (
        bridge.post(
            "/v1/onec/Номенклатура/batch", json=[product], headers=_message(token)
        ).status_code
        == 200
    )
    resp = bridge.post(
        "/v1/onec/Номенклатура/batch", json=[other_node], headers=_message(token, node="Филиал")
    )
    assert resp.json()["duplicate_message"] is False
    resp = bridge.post("/v1/onec/Склады/batch", json=[warehouse], headers=_message(token))
    assert resp.json()["duplicate_message"] is False
    assert sorted(topic_keys(bridge_settings, "product", 2)) == sorted(
        [product["Ref_Key"], other_node["Ref_Key"]]
    )
    assert topic_keys(bridge_settings, "warehouse", 1) == [warehouse["Ref_Key"]]


def test_reused_number_with_another_body_is_a_conflict(bridge, bridge_settings, token):
    first = sample("Склады")
    assert (
        bridge.post("/v1/onec/Склады/batch", json=[first], headers=_message(token)).status_code
        == 200
    )
    resp = bridge.post("/v1/onec/Склады/batch", json=[sample("Склады")], headers=_message(token))
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "conflict"
    assert topic_keys(bridge_settings, "warehouse", 1) == [first["Ref_Key"]]


def test_rejected_message_is_not_remembered(bridge, bridge_settings, token):
    bad = [sample("Склады", Description=None)]
    for _ in range(2):
        resp = bridge.post("/v1/onec/Склады/batch", json=bad, headers=_message(token))
        assert resp.status_code == 422 and resp.json()["duplicate_message"] is False
    assert _sql(bridge_settings, "SELECT count(*) FROM onec_exchange_message") == [(0,)]


@pytest.mark.parametrize(
    "headers",
    [
        {exchange.NODE_HEADER: "ЦБ".encode()},
        {exchange.NUMBER_HEADER: "7"},
        {exchange.NODE_HEADER: "A", exchange.NUMBER_HEADER: "seven"},
    ],
)
def test_malformed_exchange_headers(bridge, bridge_settings, token, headers):
    resp = bridge.post(
        "/v1/onec/Склады/batch", json=[sample("Склады")], headers=_auth(token, **headers)
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_request"
    resp = bridge.post("/v1/onec/Склады", json=sample("Склады"), headers=_message(token))
    assert resp.status_code == 400
    assert topic_keys(bridge_settings, "warehouse") == []


def test_message_in_flight_is_busy_and_a_dead_claim_is_taken_over(bridge, bridge_settings, token):
    """A number another request is publishing: 409 + Retry-After, nothing published; once that
    claim's lease ran out (its request died) the message is taken over and published."""
    records = [sample("РасходныйКассовыйОрдер")]
    body = json.dumps(records, ensure_ascii=False).encode()
    url = "/v1/onec/РасходныйКассовыйОрдер/batch"
    headers = {**_message(token), "Content-Type": "application/json"}
    with psycopg.connect(_libpq(bridge_settings)) as conn:
        conn.execute(
            "INSERT INTO onec_exchange_message (principal, node, message_no, object, "
            "body_sha256, response) VALUES (%s, 'ЦБ', 7, 'РасходныйКассовыйОрдер', %s, "
            "jsonb_build_object('_in_flight', 'another-request'))",
            (PRINCIPAL, exchange.body_digest(body)),
        )
    busy = bridge.post(url, content=body, headers=headers)
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "idempotency_in_progress"
    assert int(busy.headers["retry-after"]) > 0
    assert topic_keys(bridge_settings, "cash_expense") == []
    with psycopg.connect(_libpq(bridge_settings)) as conn:
        conn.execute("UPDATE onec_exchange_message SET received_at = now() - interval '1 hour'")
    taken = bridge.post(url, content=body, headers=headers)
    assert taken.status_code == 200 and taken.json()["duplicate_message"] is False, taken.text
    again = bridge.post(url, content=body, headers=headers)
    assert again.status_code == 200 and again.json()["duplicate_message"] is True, again.text
    assert topic_keys(bridge_settings, "cash_expense", 1) == [records[0]["Ref_Key"]]


def test_identical_messages_at_once_publish_once(bridge, bridge_settings, token):
    """Of identical messages sent at once one publishes; the others are told it is in flight
    (409, retried by 1С) or answered as a duplicate. Nothing is published twice."""
    records = [sample("РасходныйКассовыйОрдер")]
    url, answers = "/v1/onec/РасходныйКассовыйОрдер/batch", []
    threads = [
        threading.Thread(
            target=lambda: answers.append(bridge.post(url, json=records, headers=_message(token)))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    outcomes = sorted((a.status_code, a.json().get("duplicate_message")) for a in answers)
    assert outcomes.count((200, False)) == 1, [a.text for a in answers]
    assert all(o in ((200, False), (200, True), (409, None)) for o in outcomes), outcomes
    assert topic_keys(bridge_settings, "cash_expense", 1) == [records[0]["Ref_Key"]]


def _libpq(settings) -> str:
    return settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")


def _sql(settings, query: str) -> list[tuple]:
    with psycopg.connect(_libpq(settings)) as conn:
        return conn.execute(query).fetchall()
