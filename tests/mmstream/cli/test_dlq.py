"""``mmctl dlq`` end to end: real pipeline processes put records in the DLQ, the CLI lists,
shows and replays them, and the pipeline's dedupe makes a repeated replay change nothing."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from mmstream.kafka.producer import AckedProducer, OutRecord
from tests.mmstream.cli.conftest import Mmctl, wait_committed_past
from tests.support.processes import eventually
from tests.support.stack import onec_product
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e
EGRESS_DLQ = "dlq.egress.bitrix24.product"


def _wait(pipeline, check, timeout_s: float, message: str):
    try:
        return eventually(check, timeout_s, interval_s=0.5, message=message)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{pipeline.logs()}") from None


def _successful_adds(pipeline, xml_id: str) -> list[dict]:
    return [
        c
        for c in pipeline.emulator_calls("catalog.product.add")
        if c["status"] == 200 and c["params"]["fields"]["xmlId"] == xml_id
    ]


def _replayed_offset(result: dict, topic: str) -> tuple[int, int]:
    """The (partition, last offset) a replay wrote to ``topic``, from its audit details."""
    [(partition, runs)] = result["details"]["after"][topic].items()
    return int(partition), runs[-1][1]


def test_refused_product_is_replayed_after_the_fault_is_cleared_and_delivered_once(pipeline):
    settings = pipeline.settings
    mmctl = Mmctl(settings)
    refused, healthy = onec_product(), onec_product()
    key = refused["Ref_Key"]
    pipeline.start_emulator()
    pipeline.inject_fault(
        method="catalog.product.add",
        status=400,
        error="",
        description="Field NAME is required",
        times=100,
        xml_id=key,
    )
    pipeline.start_sink()
    pipeline.start_egress()
    pipeline.start_bridge()
    for rec in (refused, healthy):
        assert pipeline.post_product(rec).status_code == 202
    _wait(
        pipeline,
        lambda: healthy["Ref_Key"] in {p["xmlId"] for p in pipeline.emulator_products()},
        120,
        "healthy product delivered",
    )
    count_records(settings, EGRESS_DLQ, expect_at_least=1, timeout_s=60)

    # list: counts by reason and entity
    [summary] = mmctl.json("dlq", "list", EGRESS_DLQ)
    assert summary["topic"] == settings.topic(EGRESS_DLQ) and summary["records"] == 1
    [reason] = summary["by_reason"]
    code = reason["code"]  # the Bitrix24 client's code for a validation 4xx
    assert (reason["stage"], reason["count"]) == ("egress", 1) and "invalid_request" in code
    assert "Field NAME is required" in reason["example"]
    assert summary["top_entities"] == [{"entity": key, "count": 1}]
    everything = {s["topic"]: s["records"] for s in mmctl.json("dlq", "list", "--all")}
    assert everything[settings.topic("dlq.normalize")] == 0
    table = mmctl("dlq", "list", EGRESS_DLQ).stdout
    assert code in table and key in table

    # show: failure metadata, headers and the payload pretty-printed
    text = mmctl("dlq", "show", EGRESS_DLQ, "--entity", key).stdout
    assert "Field NAME is required" in text and "ce_id:" in text
    assert f'"id": "{key}"' in text  # indented JSON of the canonical product
    [shown] = mmctl.json("dlq", "show", EGRESS_DLQ, "--reason", code)
    assert shown["failure"]["source.topic"] == settings.topic("egress.bitrix24.product")
    assert shown["payload"]["format"] == "json" and shown["payload"]["json"]["id"] == key
    assert mmctl.json("dlq", "show", EGRESS_DLQ, "--reason", "overload") == []

    # preview publishes nothing
    egress_before = len(count_records(settings, "egress.bitrix24.product", expect_at_least=2))
    preview = mmctl("dlq", "replay", EGRESS_DLQ, "--reason", code).stdout
    assert "preview only" in preview and key in preview
    assert (
        len(count_records(settings, "egress.bitrix24.product", expect_at_least=egress_before))
        == egress_before
    )

    httpx.delete(f"{pipeline.emulator_url}/_emulator/faults", timeout=10).raise_for_status()
    first = mmctl.json("dlq", "replay", EGRESS_DLQ, "--entity", key, "--execute")
    assert first["executed"] and first["records"] == 1 and first["actor"] == "sre-test"
    _wait(
        pipeline,
        lambda: key in {p["xmlId"] for p in pipeline.emulator_products()},
        120,
        "replayed product delivered",
    )

    # The replayed record is the original bytes and headers, plus the replay marker.
    replayed = count_records(settings, "egress.bitrix24.product", expect_at_least=egress_before + 1)
    original, again = [m for m in replayed if m.key().decode() == key]
    headers = dict(again.headers())
    assert again.value() == original.value() and again.partition() == original.partition()
    assert not [k for k in headers if k.startswith("dlq.")]
    assert headers["ce_id"] == dict(original.headers())["ce_id"]
    marker = json.loads(headers["mm.replay"])
    assert marker["id"] == first["replay_id"] and marker["dlq_topic"] == settings.topic(EGRESS_DLQ)

    # A second replay of the same record changes nothing: the egress skips what it delivered.
    second = mmctl.json("dlq", "replay", EGRESS_DLQ, "--entity", key, "--execute")
    assert second["earlier_replays"] == {first["replay_id"]: 1}
    audit = mmctl.json("dlq", "audit", EGRESS_DLQ)
    assert [a["details"]["replay_id"] for a in audit] == [second["replay_id"], first["replay_id"]]
    assert all(a["actor"] == "sre-test" and a["details"]["outcome"] == "published" for a in audit)
    partition, offset = _replayed_offset(audit[0], settings.topic("egress.bitrix24.product"))
    wait_committed_past(
        settings,
        settings.streams.egress_group,
        settings.topic("egress.bitrix24.product"),
        partition,
        offset,
    )
    assert len(_successful_adds(pipeline, key)) == 1
    assert [p["xmlId"] for p in pipeline.emulator_products()].count(key) == 1
    assert not [
        c
        for c in pipeline.emulator_calls("catalog.product.update")
        if c["params"].get("fields", {}).get("xmlId") == key
    ]
    table = mmctl("dlq", "audit").stdout
    assert first["replay_id"] in table and "sre-test" in table and "entity=" in table
    pipeline.assert_alive()


def _produce(settings, records: list[OutRecord]) -> None:
    async def run() -> None:
        producer = AckedProducer(settings.kafka, client_id="test-raw")
        try:
            await producer.send_many(records)
        finally:
            producer.close()

    asyncio.run(run())


def test_a_broken_raw_record_is_replayed_with_a_patch_and_stored_once(pipeline, tmp_path):
    settings = pipeline.settings
    mmctl = Mmctl(settings)
    pipeline.start_sink()
    broken, garbage_key = onec_product(DataVersion=""), onec_product()["Ref_Key"]
    raw = settings.topic("raw.onec.product")
    headers = [("ce_id", b"e-1"), ("content-type", b"application/json")]
    _produce(
        settings,
        [
            OutRecord(
                raw,
                json.dumps(broken, ensure_ascii=False).encode(),
                broken["Ref_Key"].encode(),
                headers,
            ),
            OutRecord(raw, b"\xff{not json", garbage_key.encode(), [("ce_id", b"e-2")]),
        ],
    )
    assert len(count_records(settings, "dlq.normalize", expect_at_least=2, timeout_s=90)) == 2

    patch = tmp_path / "fix.json"
    patch.write_text(
        json.dumps([{"op": "replace", "path": "/DataVersion", "value": "AAAAAgAAAAA="}])
    )
    # A patch on a payload that is not JSON is refused, and then nothing is published at all.
    refused = mmctl(
        "dlq", "replay", "dlq.normalize", "--all", "--patch", str(patch), "--execute", expect=2
    )
    assert (
        "not valid JSON" in refused.stderr
        and "JSON patches apply to JSON payloads only" in refused.stderr
    )
    assert len(count_records(settings, "raw.onec.product", expect_at_least=2)) == 2
    assert mmctl.json("dlq", "audit") == []
    mmctl("dlq", "replay", "dlq.normalize", expect=2)  # no selection: usage error

    preview = mmctl(
        "dlq", "replay", "dlq.normalize", "--entity", broken["Ref_Key"], "--patch", str(patch)
    ).stdout
    assert "JSON patch applied" in preview and "preview only" in preview
    for _ in range(2):
        mmctl.json(
            "dlq",
            "replay",
            "dlq.normalize",
            "--entity",
            broken["Ref_Key"],
            "--patch",
            str(patch),
            "--execute",
        )
    pipeline.wait_sql(
        "SELECT version FROM product WHERE id = %s", lambda r: r, 90, broken["Ref_Key"]
    )
    audit = mmctl.json("dlq", "audit", "dlq.normalize")
    assert len(audit) == 2 and all(a["details"]["patched"] == 1 for a in audit)
    assert audit[0]["details"]["patch"] == json.loads(patch.read_text())
    partition, offset = _replayed_offset(audit[0], raw)
    wait_committed_past(settings, settings.streams.entity_sink_group, raw, partition, offset)

    assert pipeline.sql("SELECT version FROM product WHERE id = %s", broken["Ref_Key"]) == [
        ("AAAAAgAAAAA=",)
    ]
    assert pipeline.sql("SELECT count(*) FROM outbox WHERE entity_id = %s", broken["Ref_Key"]) == [
        (1,)
    ]
    assert pipeline.sql(
        "SELECT count(*) FROM source_version WHERE source_id = %s", broken["Ref_Key"]
    ) == [(1,)]
    # The garbage record is still parked, and still the only one a list reports as such.
    [summary] = mmctl.json("dlq", "list", "dlq.normalize")
    # (The one sink tells a record that is not JSON from one its normalizer refuses.)
    assert summary["records"] == 2
    assert {r["code"] for r in summary["by_reason"]} == {"invalid_record", "unnormalizable"}
    pipeline.assert_alive()
