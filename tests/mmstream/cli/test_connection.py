"""``--command-config``: Java client properties onto the MM_KAFKA__* settings (pure)."""

from __future__ import annotations

import click
import pytest

from mmstream.cli.connection import command_config
from mmstream.settings import KafkaSettings


def _map(tmp_path, text: str) -> dict[str, str]:
    props = tmp_path / "client.properties"
    props.write_text(text)
    return command_config(props)


def _kafka(env: dict[str, str]) -> KafkaSettings:
    return KafkaSettings(**{k.removeprefix("MM_KAFKA__").lower(): v for k, v in env.items()})


def test_sasl_ssl_with_a_pem_truststore(tmp_path):
    env = _map(
        tmp_path,
        "bootstrap.servers=k1:9093,k2:9093\n"
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
        'required username="svc" password="p\\\\"w";\n'
        "ssl.truststore.type=PEM\nssl.truststore.location=/etc/kafka/ca.pem\n"
        "ssl.endpoint.identification.algorithm=\n",
    )
    kafka = _kafka(env)
    assert (kafka.bootstrap_servers, kafka.security_protocol, kafka.sasl_mechanism) == (
        "k1:9093,k2:9093",
        "SASL_SSL",
        "SCRAM-SHA-256",
    )
    assert kafka.sasl_username == "svc" and kafka.sasl_password.get_secret_value() == 'p"w'
    assert str(kafka.ssl_ca_file) == "/etc/kafka/ca.pem" and kafka.ssl_check_hostname is False


def test_mtls_with_librdkafka_names_and_a_pem_keystore(tmp_path):
    env = _map(
        tmp_path,
        "security.protocol=SSL\nssl.ca.location=ca.pem\n"
        "ssl.keystore.type=PEM\nssl.keystore.location=client.pem\n"
        "ssl.key.password=k3y\n",
    )
    assert env == {
        "MM_KAFKA__SECURITY_PROTOCOL": "SSL",
        "MM_KAFKA__SSL_CA_FILE": "ca.pem",
        "MM_KAFKA__SSL_CERT_FILE": "client.pem",
        "MM_KAFKA__SSL_KEY_FILE": "client.pem",
        "MM_KAFKA__SSL_KEY_PASSWORD": "k3y",
    }


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("ssl.truststore.location=/t.jks\n", "JKS store"),
        ("ssl.keystore.type=PKCS12\nssl.keystore.location=/k.p12\n", "PKCS12 store"),
        (
            "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;\n",
            "OAUTHBEARER",
        ),
        (
            "security.protocol=SSL\nclient.id=x\nrequest.timeout.ms=5\n",
            "client.id, request.timeout.ms have no mmctl setting",
        ),
    ],
)
def test_what_no_setting_carries_is_refused(tmp_path, text, said):
    with pytest.raises(click.BadParameter, match=said):
        _map(tmp_path, text)


def test_a_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(click.BadParameter, match="cannot read"):
        command_config(tmp_path / "nope.properties")
