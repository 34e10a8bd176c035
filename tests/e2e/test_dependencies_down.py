"""Our own dependencies failing: the database goes away under the sink, and records that
reach the raw topic without passing the bridge. Nothing is lost, nothing is doubled,
nothing is dropped silently."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import SecretStr

from devstack.stack.postgres import EmbeddedPostgres
from mmstream.db.migrate import upgrade
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.serve import free_port
from mmstream.settings import sqlalchemy_url
from tests.support.stack import onec_product
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e


def test_sink_waits_out_a_database_outage(pipeline, tmp_path):
    server = EmbeddedPostgres(tmp_path / "pg", free_port(), durable=False).start()
    try:
        url = sqlalchemy_url(server.url("postgres"))
        upgrade(url)
        pipeline.settings = pipeline.settings.model_copy(update={"database_url": SecretStr(url)})
        pipeline.start_all()
        first = [onec_product() for _ in range(5)]
        for rec in first:
            assert pipeline.post_product(rec).status_code == 202
        pipeline.wait_sql("SELECT count(*) FROM product", lambda r: r[0][0] == 5, 60)

        server.stop()
        second = [onec_product() for _ in range(5)]
        for rec in second:  # accepted: the bridge needs Kafka, not the database
            assert pipeline.post_product(rec).status_code == 202
        time.sleep(3)  # the sink now retries its batch against a dead database
        assert pipeline.procs["sink"].alive(), pipeline.logs()
        server.start()

        rows = pipeline.wait_sql(
            "SELECT count(*), count(DISTINCT id) FROM product", lambda r: r[0][0] == 10, 90
        )
        assert rows == [(10, 10)]
        assert pipeline.sql("SELECT count(*) FROM outbox") == [(10,)]
        sink_log = pipeline.procs["sink"].log_path.read_text()
        # The outage hits whichever database step the sink is in (the merge of the next batch,
        # or publishing the previous batch's outbox): either way it waited and retried.
        assert "failed, retrying" in sink_log
        assert '"error_code": "database_unavailable"' in sink_log
    finally:
        pipeline.stop()
        server.stop()


def test_undecodable_raw_record_goes_to_the_sink_dlq_and_the_stream_goes_on(pipeline):
    pipeline.start_sink()
    settings = pipeline.settings
    good = onec_product()
    garbage = OutRecord(
        settings.topic("raw.onec.product"),
        b"\xff{not json",
        good["Ref_Key"].encode(),
        [("ce_id", b"x-1")],
    )
    broken = OutRecord(
        settings.topic("raw.onec.product"),
        b'{"Ref_Key": "%s", "DataVersion": ""}' % good["Ref_Key"].encode(),
        good["Ref_Key"].encode(),
    )
    valid = OutRecord(
        settings.topic("raw.onec.product"),
        __import__("json").dumps(good).encode(),
        good["Ref_Key"].encode(),
    )

    async def produce():
        producer = AckedProducer(settings.kafka, client_id="test")
        try:
            await producer.send_many([garbage, broken, valid])
        finally:
            producer.close()

    asyncio.run(produce())
    pipeline.wait_sql("SELECT 1 FROM product WHERE id = %s", lambda r: r, 60, good["Ref_Key"])
    dlq = count_records(settings, "dlq.normalize", expect_at_least=2)
    assert sorted(m.value() for m in dlq) == sorted([garbage.value, broken.value])
    by_value = {m.value(): {k: v.decode() for k, v in m.headers()} for m in dlq}
    assert "not JSON" in by_value[garbage.value]["dlq.error.message"]
    assert by_value[garbage.value]["ce_id"] == "x-1"
    assert "DataVersion" in by_value[broken.value]["dlq.error.message"]
    assert all(h["dlq.stage"] == "normalize" for h in by_value.values())
    assert by_value[garbage.value]["dlq.error.code"] == "unnormalizable"
    assert by_value[broken.value]["dlq.error.code"] == "invalid_record"
