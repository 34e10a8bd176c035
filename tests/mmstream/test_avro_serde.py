"""The Avro encoder on confluent-kafka's registry client and serializer, against the
development registry requiring basic auth behind TLS (stunnel, a CA made by the test): the
settings' auth and CA reach the client, the wire format stays byte 0 + schema id + body."""

from __future__ import annotations

import io
import json
import secrets
import struct
import uuid

import fastavro
import pytest

from mmstream.avro_serde import AvroEncoder, RegistryUnavailable, register
from mmstream.cli.export import Decoder
from mmstream.errors import ConfigurationError
from mmstream.serve import free_port
from mmstream.settings import Settings
from tests.support.processes import Proc, wait_http
from tests.support.tls import Stunnel, make_pki

SCHEMA = {
    "type": "record",
    "name": "Probe",
    "namespace": "mm.test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}


@pytest.fixture(scope="module")
def secured_registry(databases, tmp_path_factory):
    """(https URL, user, password, CA file): the dev registry with basic auth, TLS by stunnel."""
    folder = tmp_path_factory.mktemp("secured-registry")
    pki = make_pki(folder)
    user, password = "mm-sink", secrets.token_hex(16)
    port, tls = free_port(), free_port()
    proc = Proc(
        "registry",
        ["registry", "--port", str(port)],
        {
            "MM_DATABASE_URL": databases.create(),
            "MM_LOG_LEVEL": "INFO",
            "MM_REGISTRY__BASIC_AUTH_USERNAME": user,
            "MM_REGISTRY__BASIC_AUTH_PASSWORD": password,
        },
        folder,
    ).start()
    tunnel = None
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        tunnel = Stunnel(pki, tls, f"127.0.0.1:{port}", folder).start()
        yield f"https://127.0.0.1:{tls}", user, password, pki.ca
    finally:
        if tunnel:
            tunnel.stop()
        proc.stop()


def registry_settings(url: str, **registry) -> Settings:
    return Settings(_env_file=None, schema_registry_url=url, registry=registry)


@pytest.fixture
def schema_file(tmp_path):
    path = tmp_path / "probe.avsc"
    path.write_text(json.dumps(SCHEMA), encoding="utf-8")
    return path


def test_encoder_registers_with_basic_auth_over_tls_and_keeps_the_wire_format(
    secured_registry, schema_file
):
    url, user, password, ca = secured_registry
    s = registry_settings(
        url, basic_auth_username=user, basic_auth_password=password, ssl_ca_file=ca
    )
    subject = f"t{uuid.uuid4().hex[:6]}.norm.probe-value"
    encoder = AvroEncoder(schema_file, s.registry_client_config(), subject)
    record = {"id": "a-1", "qty": 3, "note": "тест"}

    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(SCHEMA), record)
    assert encoder.encode(record) == struct.pack(">bI", 0, encoder.schema_id) + body.getvalue()
    assert encoder.encode_many([record, record]) == [encoder.encode(record)] * 2
    # registering again is idempotent: the same id
    assert register(s.registry_client_config(), subject, SCHEMA) == encoder.schema_id

    decoder = Decoder(
        s.registry_client_config(), subject, subject.removesuffix("-value"), schema_file
    )
    assert decoder(encoder.encode(record)) == record


def test_wrong_credentials_are_a_configuration_error_without_the_password(
    secured_registry, schema_file
):
    url, user, _, ca = secured_registry
    wrong = "wrong-" + secrets.token_hex(8)
    s = registry_settings(url, basic_auth_username=user, basic_auth_password=wrong, ssl_ca_file=ca)
    with pytest.raises(ConfigurationError) as err:
        AvroEncoder(schema_file, s.registry_client_config(), f"t{uuid.uuid4().hex[:6]}-value")
    assert "401" in str(err.value) and wrong not in str(err.value)


def test_a_registry_whose_certificate_is_not_trusted_is_not_used(secured_registry, schema_file):
    url, user, password, _ = secured_registry
    # No CA file: the system trust store, which does not know the test CA.
    s = registry_settings(url, basic_auth_username=user, basic_auth_password=password)
    with pytest.raises(ConfigurationError) as err:
        AvroEncoder(schema_file, s.registry_client_config(), f"t{uuid.uuid4().hex[:6]}-value")
    assert "not trusted" in str(err.value) and "MM_REGISTRY__SSL_CA_FILE" in str(err.value)


def test_an_unreachable_registry_is_transient(schema_file):
    # No retries: the client's default backoff would only make the test slower.
    conf = {"url": f"http://127.0.0.1:{free_port()}", "max.retries": 0}
    with pytest.raises(RegistryUnavailable):
        AvroEncoder(schema_file, conf, "any-value")


def test_health_checks_the_registry_with_the_workers_credentials(secured_registry):
    from mmstream.ops.health import DOWN, OK, check_registry

    url, user, password, ca = secured_registry
    good = registry_settings(
        url, basic_auth_username=user, basic_auth_password=password, ssl_ca_file=ca
    )
    assert check_registry(good, 5).status == OK
    wrong = "wrong-" + secrets.token_hex(8)
    refused = check_registry(
        registry_settings(url, basic_auth_username=user, basic_auth_password=wrong, ssl_ca_file=ca),
        5,
    )
    assert refused.status == DOWN and "401" in refused.detail and wrong not in refused.detail
