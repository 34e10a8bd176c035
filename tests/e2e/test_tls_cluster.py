"""Every Kafka client over TLS, for real: a broker of this module's own behind stunnel on
loopback (its advertised listener is the TLS port, so clients reconnect through the
terminator), with a CA the test makes. Our confluent-kafka and aiokafka clients, a Faust
worker (the entity sink), the bridge and `mmctl groups describe` run with nothing but the
MM_KAFKA__* security settings; a client without the CA is refused."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from devstack.stack.broker import EmbeddedBroker
from mmstream.avro_serde import registry_client
from mmstream.kafka.admin import existing_topics
from mmstream.kafka.lag import end_offsets
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.serve import free_port
from tests.e2e.test_entity_flow import warehouse
from tests.mmstream.cli.conftest import Mmctl
from tests.support.stack import Pipeline
from tests.support.tls import Stunnel, make_pki
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    """(PKI, TLS bootstrap): a plaintext broker on one port, stunnel's TLS on another."""
    folder = tmp_path_factory.mktemp("tls")
    pki = make_pki(folder)
    plain, tls = free_port(), free_port()
    broker = EmbeddedBroker(
        plain, advertised=f"127.0.0.1:{tls}", log_path=folder / "broker.log"
    ).start()
    tunnel = None
    try:
        tunnel = Stunnel(pki, tls, f"127.0.0.1:{plain}", folder).start()
        yield pki, f"127.0.0.1:{tls}"
    finally:
        if tunnel:
            tunnel.stop()
        broker.stop()


@pytest.fixture
def tls_settings(settings, tls_broker):
    pki, bootstrap = tls_broker
    kafka = settings.kafka.model_validate(
        {
            **settings.kafka.model_dump(),
            "bootstrap_servers": bootstrap,
            "security_protocol": "SSL",
            "ssl_ca_file": pki.ca,
            "ssl_check_hostname": True,
        }
    )
    return settings.model_copy(update={"kafka": kafka})


def test_confluent_and_aiokafka_clients_produce_and_consume_over_tls(tls_settings):
    k = tls_settings.kafka
    topic = tls_settings.topic("tls.check")
    admin = AdminClient(k.client_config())
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    assert topic in existing_topics(admin)

    async def run() -> list[bytes]:
        producer = AckedProducer(k, client_id="tls-test")
        try:
            done = await producer.send(OutRecord(topic, b"from-confluent", b"k1"))
        finally:
            producer.close()
        assert done.offset == 0
        aio = AIOKafkaProducer(bootstrap_servers=k.bootstrap_servers, **k.aiokafka_security())
        await aio.start()
        try:
            await aio.send_and_wait(topic, b"from-aiokafka", key=b"k2")
        finally:
            await aio.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=k.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=f"tls-{uuid.uuid4().hex[:6]}",
            **k.aiokafka_security(),
        )
        await consumer.start()
        try:
            got: list[bytes] = []
            while len(got) < 2:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                got += [m.value for msgs in batch.values() for m in msgs]
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == [b"from-confluent", b"from-aiokafka"]
    # the lag tooling's probe consumer (confluent) reads the end through TLS as well
    assert end_offsets(k, [(topic, 0)]) == {(topic, 0): 2}


def test_a_client_without_the_ca_is_refused(tls_settings):
    # The system trust store does not know the test CA: the handshake must fail, not
    # silently fall back to plaintext or skip verification.
    untrusting = tls_settings.kafka.model_copy(update={"ssl_ca_file": None})
    admin = AdminClient({**untrusting.client_config(), "socket.timeout.ms": 3000})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)


def test_worker_bridge_and_mmctl_run_over_tls(tls_settings, registry_url, tmp_path):
    settings = tls_settings.model_copy(
        update={
            "schema_registry_url": registry_url,
            "ingress": tls_settings.ingress.model_copy(update={"port": free_port()}),
        }
    )
    stack = Pipeline(settings, tmp_path)  # creates the topics through TLS (admin client)
    try:
        stack.start_entity_sink()
        stack.start_bridge()
        ref = str(uuid.uuid4())
        resp = stack.post_onec("Склады", warehouse(ref, "AAAAAQ==", "Склад TLS"))
        assert resp.status_code == 202, resp.text

        # bridge -> raw topic -> Faust worker (aiokafka over TLS) -> table + norm topic
        stack.wait_sql('SELECT name FROM "warehouse" WHERE id = %s', lambda r: len(r) == 1, 90, ref)
        raw = count_records(settings, "raw.onec.warehouse", expect_at_least=1, quiet_s=0)
        assert [m.key().decode() for m in raw] == [ref]
        (norm,) = count_records(settings, "norm.warehouse", expect_at_least=1)
        value = AvroDeserializer(registry_client(settings.registry_client_config()))(
            norm.value(), SerializationContext(norm.topic(), MessageField.VALUE)
        )
        assert value["name"] == "Склад TLS"

        group = settings.streams.entity_sink_group
        out = Mmctl(settings)("groups", "describe", group).stdout
        assert settings.topic("raw.onec.warehouse") in out, out
    finally:
        stack.stop()
