"""One security section, every client: how MM_KAFKA__* / MM_REGISTRY__* map onto librdkafka
properties, aiokafka keyword arguments, Faust's broker_credentials and the registry client.
(The TLS path runs for real in tests/e2e/test_tls_cluster.py and test_avro_serde.py.)"""

from __future__ import annotations

import ssl

import faust
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from pydantic import ValidationError

from mmstream.errors import ConfigurationError
from mmstream.settings import KafkaSettings, Settings, masked_config
from stages.app import create_app
from tests.support.tls import make_pki

PASSWORD = "Kf7Qm2Vx9Lp4Rt8Z-scram"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def scram_tls(pki, **more) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="mm-sink",
        sasl_password=PASSWORD,
        ssl_ca_file=pki.ca,
        **more,
    )


def test_librdkafka_properties_carry_sasl_and_tls(pki):
    conf = scram_tls(pki).client_config()
    assert conf == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "mm-sink",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(pki.ca),
        "ssl.endpoint.identification.algorithm": "https",
    }


def test_client_certificate_and_hostname_check_reach_librdkafka(pki):
    k = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_file=pki.ca,
        ssl_cert_file=pki.cert,
        ssl_key_file=pki.key,
        ssl_check_hostname=False,
    )
    conf = k.client_config()
    assert conf["ssl.certificate.location"] == str(pki.cert)
    assert conf["ssl.key.location"] == str(pki.key)
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert "sasl.mechanism" not in conf


def test_aiokafka_gets_a_verifying_context_and_the_scram_credentials(pki):
    kwargs = scram_tls(pki).aiokafka_security()
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "mm-sink",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize(
    "protocol,mechanism,expected",
    [
        ("SASL_SSL", "SCRAM-SHA-256", "SASL_SSL"),
        ("SASL_PLAINTEXT", "PLAIN", "SASL_PLAINTEXT"),
    ],
)
def test_faust_workers_get_sasl_credentials(pki, protocol, mechanism, expected):
    k = KafkaSettings(
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username="u",
        sasl_password=PASSWORD,
        ssl_ca_file=pki.ca if protocol == "SASL_SSL" else None,
    )
    creds = k.faust_credentials()
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == expected and creds.mechanism.value == mechanism
    assert creds.username == "u" and creds.password == PASSWORD


def test_the_faust_app_carries_the_credentials(pki):
    settings = Settings(
        _env_file=None, kafka={"security_protocol": "SSL", "ssl_ca_file": str(pki.ca)}
    )
    app = create_app(settings, "g-tls")
    assert isinstance(app.conf.broker_credentials, faust.SSLCredentials)
    assert app.conf.broker_credentials.protocol.value == "SSL"
    assert create_app(Settings(_env_file=None), "g-plain").conf.broker_credentials is None


@pytest.mark.parametrize(
    "kafka,message",
    [
        ({"security_protocol": "SASL_SSL"}, "needs kafka.sasl_mechanism"),
        ({"sasl_mechanism": "PLAIN", "sasl_username": "u"}, "use SASL_SSL"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "sasl_username is required"),
        ({"ssl_ca_file": "/tmp/ca.pem"}, "use SSL or SASL_SSL"),
        ({"security_protocol": "SSL", "ssl_key_file": "/tmp/k.pem"}, "needs kafka.ssl_cert_file"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u"},
            "sasl_mechanism",
        ),
    ],
)
def test_a_half_configured_security_section_is_refused_at_load(kafka, message):
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None, kafka=kafka)
    assert message in str(err.value)


def test_lower_case_spellings_are_accepted():
    k = KafkaSettings(
        security_protocol="sasl_ssl", sasl_mechanism="scram-sha-256", sasl_username="u"
    )
    assert (k.security_protocol, k.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")


def test_a_missing_tls_file_names_the_setting_when_a_client_is_built(tmp_path):
    k = KafkaSettings(security_protocol="SSL", ssl_ca_file=tmp_path / "absent.pem")
    with pytest.raises(ConfigurationError, match="absent.pem"):
        k.client_config()
    with pytest.raises(ConfigurationError, match="absent.pem"):
        k.ssl_context()


def test_secrets_are_masked_in_mmctl_config(pki):
    s = Settings(
        _env_file=None,
        kafka=scram_tls(pki, ssl_key_password="key-pass-0123456789").model_dump(),
        schema_registry_url="https://registry:8081",
        registry={"basic_auth_username": "sr", "basic_auth_password": "sr-pass-0123456789"},
    )
    shown = str(masked_config(s))
    for secret in (PASSWORD, "key-pass-0123456789", "sr-pass-0123456789"):
        assert secret not in shown
    assert masked_config(s)["kafka"]["sasl_password"] == "**********"


def test_registry_basic_auth_and_tls_reach_the_schema_registry_client(pki):
    s = Settings(
        _env_file=None,
        schema_registry_url="https://registry:8081",
        registry={
            "basic_auth_username": "sr",
            "basic_auth_password": "sr-pass-0123456789",
            "ssl_ca_file": str(pki.ca),
            "ssl_cert_file": str(pki.cert),
            "ssl_key_file": str(pki.key),
        },
    )
    conf = s.registry_client_config()
    assert conf["basic.auth.user.info"] == "sr:sr-pass-0123456789"
    client = SchemaRegistryClient(conf)  # the library accepts and applies the mapping
    rest = client._rest_client  # noqa: SLF001 — no public accessor for what it applied
    assert rest.auth == ("sr", "sr-pass-0123456789")
    assert rest.verify.verify_mode == ssl.CERT_REQUIRED


def test_registry_bearer_token_is_sent_as_authorization(pki):
    s = Settings(
        _env_file=None,
        schema_registry_url="https://registry:8081",
        registry={"bearer_token": "tok-0123456789abcdef", "bearer_logical_cluster": "lsrc-1"},
    )
    client = SchemaRegistryClient(s.registry_client_config())
    headers: dict = {}
    client._rest_client.handle_bearer_auth(headers)  # noqa: SLF001 — the header it will send
    assert headers["Authorization"] == "Bearer tok-0123456789abcdef"
    assert headers["target-sr-cluster"] == "lsrc-1"


def test_registry_auth_is_one_kind():
    with pytest.raises(ValidationError, match="not both"):
        Settings(_env_file=None, registry={"basic_auth_username": "a", "bearer_token": "t"})
    with pytest.raises(ConfigurationError, match="SCHEMA_REGISTRY_URL"):
        Settings(_env_file=None).registry_client_config()


def test_a_weak_registry_password_is_refused_at_start():
    s = Settings(
        _env_file=None, registry={"basic_auth_username": "sr", "basic_auth_password": "changeme"}
    )
    with pytest.raises(ConfigurationError, match="registry.basic_auth_password"):
        s.check_secrets("sink")
