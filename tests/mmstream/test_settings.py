"""Settings: environment names, secrets, URL helpers, consistency, and the child-process env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from devstack.stack.env import settings_env
from mmstream.errors import ConfigurationError
from mmstream.settings import Settings, mask_url, sqlalchemy_url

SECRETS = {
    "db": "pg-Pa55word-xyz",
    "jwt": "jwt-secret-0123456789abcdef-xyz",
    "sasl": "sasl-Pa55-xyz",
    "hook": "whcode9876xyz",
    "onec": "onec-Pa55-xyz",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No MM_* / DATABASE_URL from the outer environment, and no .env in the working dir."""
    for key in list(os.environ):
        if key.upper().startswith("MM_") or key.upper() in ("DATABASE_URL", "SCHEMA_REGISTRY_URL"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def with_secrets() -> Settings:
    return Settings(
        _env_file=None,
        database_url=f"postgresql://mm:{SECRETS['db']}@db.internal:5432/mm",
        kafka={
            "sasl_mechanism": "PLAIN",
            "sasl_username": "svc",
            "sasl_password": SECRETS["sasl"],
            "security_protocol": "SASL_SSL",
        },
        auth={"jwt_secret": SECRETS["jwt"]},
        bitrix24={"webhook_url": f"https://portal.example/rest/1/{SECRETS['hook']}/"},
        onec={"password": SECRETS["onec"]},
    )


# ------------------------------------------------------------------ environment


def test_defaults_without_environment():
    s = Settings(_env_file=None)
    assert s.database_url is None and s.schema_registry_url is None
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092" and s.kafka.topic_prefix == ""
    assert s.topics_file.name == "topics.yaml" and s.topics_file.is_file()


def test_prefixed_and_nested_variables_are_read(monkeypatch):
    monkeypatch.setenv("MM_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("MM_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("MM_KAFKA__TOPIC_PREFIX", "stage.")
    monkeypatch.setenv("MM_KAFKA__REPLICATION_FACTOR", "1")
    monkeypatch.setenv("MM_STREAMS__BATCH_MAX", "250")
    monkeypatch.setenv("MM_RETRY__BASE_DELAY_S", "0.25")
    monkeypatch.setenv("MM_EMBEDDED__DEMO", "false")
    monkeypatch.setenv("MM_EMBEDDED__DATA_DIR", "/var/lib/mm")
    s = Settings(_env_file=None)
    assert s.log_level == "DEBUG"
    assert s.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert s.kafka.replication_factor == 1
    assert s.topic("raw.onec.product") == "stage.raw.onec.product"
    assert s.streams.batch_max == 250 and s.retry.base_delay_s == 0.25
    assert s.embedded.demo is False and s.embedded.data_dir == Path("/var/lib/mm")
    # Untouched siblings keep their defaults.
    assert s.kafka.linger_ms == 5 and s.streams.sink_group == "mm-sink"


def test_variables_without_the_prefix_are_ignored(monkeypatch):
    monkeypatch.setenv("KAFKA__BOOTSTRAP_SERVERS", "elsewhere:9092")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    s = Settings(_env_file=None)
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092" and s.log_level == "INFO"


def test_invalid_values_from_the_environment_are_refused(monkeypatch):
    monkeypatch.setenv("MM_STREAMS__BATCH_MAX", "0")
    with pytest.raises(ValidationError, match="batch_max"):
        Settings(_env_file=None)
    monkeypatch.setenv("MM_STREAMS__BATCH_MAX", "10")
    monkeypatch.setenv("MM_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings(_env_file=None)


def test_conventional_database_and_registry_names_are_accepted(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h:5432/app")
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://registry:8081")
    s = Settings(_env_file=None)
    assert s.database_url.get_secret_value() == "postgres://u:p@h:5432/app"
    assert s.require_database_url() == "postgresql+psycopg://u:p@h:5432/app"
    assert s.schema_registry_url == "http://registry:8081"


def test_the_prefixed_database_name_wins_over_the_conventional_one(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@conventional/app")
    monkeypatch.setenv("MM_DATABASE_URL", "postgresql://u:p@prefixed/app")
    assert "prefixed" in Settings(_env_file=None).require_database_url()


def test_a_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text(
        "MM_KAFKA__TOPIC_PREFIX=fromfile.\nDATABASE_URL=postgresql://f/db\n"
    )
    s = Settings()  # the working directory is tmp_path
    assert s.kafka.topic_prefix == "fromfile."
    assert s.require_database_url() == "postgresql+psycopg://f/db"


def test_the_environment_wins_over_the_dotenv_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("MM_KAFKA__TOPIC_PREFIX=fromfile.\n")
    monkeypatch.setenv("MM_KAFKA__TOPIC_PREFIX", "fromenv.")
    assert Settings().kafka.topic_prefix == "fromenv."


def test_require_database_url_explains_how_to_set_it():
    with pytest.raises(ConfigurationError) as info:
        Settings(_env_file=None).require_database_url()
    assert "DATABASE_URL" in str(info.value) and "mmctl run" in str(info.value)


# ------------------------------------------------------------------ secrets


def test_secrets_are_masked_in_repr_str_and_json():
    s = with_secrets()
    for shown in (
        repr(s),
        str(s),
        s.model_dump_json(),
        str(s.model_dump()),
        repr(s.kafka),
        repr(s.bitrix24),
        repr(s.auth),
        repr(s.onec),
    ):
        for secret in SECRETS.values():
            assert secret not in shown
    assert "**********" in s.model_dump_json()


def test_secrets_remain_usable_where_they_are_needed():
    s = with_secrets()
    assert SECRETS["db"] in s.require_database_url()
    assert s.auth.jwt_secret.get_secret_value() == SECRETS["jwt"]
    assert s.kafka.client_config()["sasl.password"] == SECRETS["sasl"]
    assert isinstance(s.bitrix24.webhook_url, SecretStr)


def test_client_config_carries_security_settings_only_when_sasl_is_set():
    plain = Settings(_env_file=None).kafka.client_config()
    assert plain == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}
    sasl = with_secrets().kafka.client_config()
    assert sasl["sasl.mechanism"] == "PLAIN" and sasl["sasl.username"] == "svc"
    assert sasl["security.protocol"] == "SASL_SSL"


# ------------------------------------------------------------------ URL helpers


@pytest.mark.parametrize(
    "given,expected",
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql:///db?host=/run/postgresql", "postgresql+psycopg:///db?host=/run/postgresql"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_sqlalchemy_url_selects_the_psycopg3_driver(given, expected):
    assert sqlalchemy_url(given) == expected


def test_sqlalchemy_url_only_rewrites_the_scheme():
    url = "postgresql://postgres://user:pw@h/db"
    assert sqlalchemy_url(url) == "postgresql+psycopg://postgres://user:pw@h/db"


@pytest.mark.parametrize(
    "given,expected",
    [
        ("postgresql://mm:s3cret@db:5432/mm", "postgresql://mm:***@db:5432/mm"),
        (
            "postgresql+psycopg://mm:s3cret@db/mm?sslmode=require",
            "postgresql+psycopg://mm:***@db/mm?sslmode=require",
        ),
        ("postgresql://s3cret:s3cret@db/mm", "postgresql://s3cret:***@db/mm"),
        ("postgresql://mm:p%40ss@db/mm", "postgresql://mm:***@db/mm"),
        ("postgresql://mm@db/mm", "postgresql://mm@db/mm"),
        ("postgresql://db/mm", "postgresql://db/mm"),
    ],
)
def test_mask_url_hides_only_the_password(given, expected):
    assert mask_url(given) == expected


def test_mask_url_hides_a_password_query_parameter():
    assert "s3cret" not in mask_url("postgresql://mm@db/mm?password=s3cret&sslmode=require")


# ------------------------------------------------------------------ consistency


def test_heartbeat_above_a_third_of_the_session_timeout_is_refused():
    with pytest.raises(ValidationError, match="heartbeat_interval_s must be at most a third"):
        Settings(_env_file=None, kafka={"session_timeout_s": 3.0, "heartbeat_interval_s": 1.5})


def test_heartbeat_of_exactly_a_third_is_accepted():
    s = Settings(_env_file=None, kafka={"session_timeout_s": 3.0, "heartbeat_interval_s": 1.0})
    assert s.kafka.heartbeat_interval_s == 1.0


def test_the_contradiction_is_also_refused_from_the_environment(monkeypatch):
    monkeypatch.setenv("MM_KAFKA__SESSION_TIMEOUT_S", "2")
    with pytest.raises(ValidationError, match="heartbeat_interval_s"):
        Settings(_env_file=None)  # default heartbeat 1.0 s > 2 s / 3


def test_base_delay_above_max_delay_is_refused():
    with pytest.raises(ValidationError, match="base_delay_s must not exceed"):
        Settings(_env_file=None, retry={"base_delay_s": 5.0, "max_delay_s": 1.0})
    Settings(_env_file=None, retry={"base_delay_s": 1.0, "max_delay_s": 1.0})


@pytest.mark.parametrize(
    "section,field",
    [
        ("kafka", "session_timeout_s"),
        ("kafka", "produce_timeout_s"),
        ("streams", "batch_within_s"),
        ("retry", "budget_s"),
    ],
)
def test_non_positive_durations_are_refused(section, field):
    with pytest.raises(ValidationError, match=field):
        Settings(_env_file=None, **{section: {field: 0}})


# ------------------------------------------------------------------ child-process env


def _rich_settings(tmp_path) -> Settings:
    s = with_secrets()
    return s.model_copy(
        update={
            "schema_registry_url": "http://127.0.0.1:18081",
            "log_format": "console",
            "topics_file": tmp_path / "topics.yaml",
            "kafka": s.kafka.model_copy(
                update={
                    "bootstrap_servers": "127.0.0.1:19092",
                    "topic_prefix": "tabc123.",
                    "replication_factor": 1,
                    "session_timeout_s": 3.0,
                    "heartbeat_interval_s": 0.5,
                    "linger_ms": 0,
                }
            ),
            "streams": s.streams.model_copy(
                update={"sink_group": "sink-abc", "batch_within_s": 0.2}
            ),
            "retry": s.retry.model_copy(update={"base_delay_s": 0.05, "max_delay_s": 0.5}),
            "ingress": s.ingress.model_copy(update={"port": 18080}),
            "auth": s.auth.model_copy(update={"jwt_issuer": "tests"}),
            "embedded": s.embedded.model_copy(
                update={"demo": False, "data_dir": tmp_path / "data", "demo_rate_per_s": 12.5}
            ),
        }
    )


def test_settings_env_round_trips(monkeypatch, tmp_path):
    original = _rich_settings(tmp_path)
    env = settings_env(original)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings(_env_file=None)
    assert rebuilt == original
    assert rebuilt.require_database_url() == original.require_database_url()
    assert rebuilt.auth.jwt_secret.get_secret_value() == SECRETS["jwt"]


def test_settings_env_round_trips_the_defaults(monkeypatch):
    original = Settings(_env_file=None)
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    assert Settings(_env_file=None) == original


def test_settings_env_names_and_values(tmp_path):
    env = settings_env(_rich_settings(tmp_path))
    assert all(k.startswith("MM_") and isinstance(v, str) for k, v in env.items())
    assert env["MM_KAFKA__BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert env["MM_EMBEDDED__DEMO"] == "false"
    # Secrets are revealed: the child process needs them.
    assert env["MM_DATABASE_URL"].endswith(f":{SECRETS['db']}@db.internal:5432/mm")
    assert env["MM_KAFKA__SASL_PASSWORD"] == SECRETS["sasl"]
    # Unset optional values are left out rather than sent as "None".
    assert "None" not in env.values()
    assert "MM_DATABASE_URL" not in settings_env(Settings(_env_file=None))


def test_events_of_a_second_portal_are_refused_at_configuration():
    # One deployment reaches one portal: a second portal's event ids would be fetched from
    # the wrong portal, so the settings refuse the combination outright.
    one = Settings(_env_file=None, bitrix24={"application_tokens": {"m1": "t1"}})
    assert list(one.bitrix24.application_tokens) == ["m1"]
    with pytest.raises(ValueError, match="one deployment per portal"):
        Settings(_env_file=None, bitrix24={"application_tokens": {"m1": "t1", "m2": "t2"}})


def test_courier_objects_are_read_from_nested_variables(monkeypatch):
    monkeypatch.setenv("MM_BITRIX24__COURIERS__INSTANT_ORDER_CATEGORY_ID", "3")
    monkeypatch.setenv("MM_BITRIX24__COURIERS__DELIVERY_ENTITY_TYPE_ID", "180")
    monkeypatch.setenv(
        "MM_BITRIX24__COURIERS__DEAL_FIELDS", '{"delivery_address": "UF_CRM_MM_ADDRESS"}'
    )
    couriers = Settings().bitrix24.couriers
    assert (couriers.instant_order_category_id, couriers.delivery_entity_type_id) == (3, 180)
    assert couriers.deal_fields == {"delivery_address": "UF_CRM_MM_ADDRESS"}
    assert couriers.task_id_field == "xmlId" and couriers.return_category_id is None


@pytest.mark.parametrize(
    "env",
    [
        {"INSTANT_ORDER_CATEGORY_ID": "3", "RETURN_CATEGORY_ID": "3"},
        {"DELIVERY_ENTITY_TYPE_ID": "180", "RETURN_ENTITY_TYPE_ID": "180"},
        {"DELIVERY_ENTITY_TYPE_ID": "2"},  # a deal, not a smart process
    ],
)
def test_courier_objects_that_cannot_be_told_apart_are_refused(monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(f"MM_BITRIX24__COURIERS__{name}", value)
    with pytest.raises(ValidationError):
        Settings()


# ------------------------------------------------------------------ secrets policy (invariant 11)

STRONG = "9f1c2a7be04d4c61a8d3f5e2b7c90a1d"  # 32 random hex characters


def strong_settings(**overrides) -> Settings:
    """Every secret of every role set to a real-looking value."""
    values = {
        "database_url": "postgresql://mm:Zq8vR2kLm4Tx9wPb@db.internal:5432/mm",
        "kafka": {
            "sasl_mechanism": "PLAIN",
            "sasl_username": "svc",
            "sasl_password": "Kf7Qm2Vx9Lp4Rt8Z",
            "security_protocol": "SASL_SSL",
        },
        "auth": {"jwt_secret": STRONG, "api_keys": {"onec": {"key": STRONG[::-1]}}},
        "commerceml": {"password": "c0" + STRONG[2:]},
        "bitrix24": {
            "webhook_url": "https://portal.bitrix24.ru/rest/1/4w0ohv1o5r6z4cgt/",
            "application_tokens": {"member": STRONG},
        },
        "onec": {
            "password": "Qm7Vx2Lp9Rt4Zk8W",
            "base_url": "https://erp.trade.local/trade/hs/mm/",
        },
        "odata": {
            "password": "Lp9Rt4Zk8WQm7Vx2",
            "base_url": "https://erp.trade.local/trade/odata/standard.odata/",
        },
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


ROLES = ("bridge", "sink", "egress", "enrich", "poll-odata", "registry")


@pytest.mark.parametrize("role", ROLES)
def test_real_secrets_pass_every_role(role):
    strong_settings().check_secrets(role)


@pytest.mark.parametrize(
    "role,setting,url",
    [
        ("egress", "onec", None),  # the development default: the emulator's port on this host
        ("egress", "onec", "https://REPLACE-ME.invalid/trade/hs/mm/"),
        ("poll-odata", "odata", None),
        ("poll-odata", "odata", "https://erp.example/trade/odata/standard.odata/"),
    ],
)
def test_a_1c_address_left_at_its_default_or_placeholder_is_refused(role, setting, url):
    """Left at the default, egress would call the emulator's port on its own host."""
    section = strong_settings().model_dump()[setting]
    section["enabled"] = True  # OData: the poller is deployed idle until enabled
    if url is None:
        section.pop("base_url")
    else:
        section["base_url"] = url
    with pytest.raises(ConfigurationError, match=rf"{setting}\.base_url is not set"):
        strong_settings(**{setting: section}).check_secrets(role)


@pytest.mark.parametrize(
    "role,setting",
    [
        ("bridge", "auth.jwt_secret"),
        ("egress", "bitrix24.webhook_url"),
        ("enrich", "bitrix24.webhook_url"),
    ],
)
def test_the_development_defaults_are_refused_in_production(role, setting):
    with pytest.raises(ConfigurationError) as err:
        Settings(_env_file=None).check_secrets(role)
    assert setting in str(err.value) and "development or placeholder" in str(err.value)
    for default in ("dev-only-change-me", "devwebhookcode"):
        assert default not in str(err.value)  # the message names the setting, never the value


def test_the_embedded_profile_may_run_on_the_development_defaults():
    for role in ROLES:
        Settings(_env_file=None, profile="embedded").check_secrets(role)


def test_the_embedded_mark_travels_to_child_processes_and_production_is_the_default(monkeypatch):
    assert Settings(_env_file=None).profile == "production"
    env = settings_env(Settings(_env_file=None).model_copy(update={"profile": "embedded"}))
    assert env["MM_PROFILE"] == "embedded"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    Settings(_env_file=None).check_secrets("bridge")


@pytest.mark.parametrize(
    "value,reason",
    [
        ("a" * 16 + "0123456789abcde", "shorter than 32 bytes"),  # 31 bytes
        ("change-me-" + STRONG, "placeholder"),
        ("CHANGEME" + STRONG, "placeholder"),
        ("<your jwt secret, 32 random bytes at least>", "placeholder"),
        ("${JWT_SECRET}" + STRONG, "placeholder"),
        ("REPLACE_ME: at least 32 random bytes", "placeholder"),  # the k8s template's
        ("my-super-secret-key-" + STRONG, "placeholder"),
        ("x" * 40, "placeholder"),
        ("ab" * 20, "too few distinct characters"),
        ("", "not set"),
    ],
)
def test_weak_jwt_secrets_are_refused(value, reason):
    with pytest.raises(ConfigurationError) as err:
        strong_settings(auth={"jwt_secret": value}).check_secrets("bridge")
    assert "auth.jwt_secret " in str(err.value) and reason in str(err.value)
    if value:
        assert value not in str(err.value)


def test_a_32_byte_secret_is_accepted_and_31_is_not():
    strong_settings(auth={"jwt_secret": STRONG}).check_secrets("bridge")
    with pytest.raises(ConfigurationError, match="shorter than 32 bytes"):
        strong_settings(auth={"jwt_secret": STRONG[:31]}).check_secrets("bridge")


@pytest.mark.parametrize(
    "role,overrides,setting",
    [
        (
            "bridge",
            {"auth": {"jwt_secret": STRONG, "api_keys": {"onec": {"key": "short-key-1"}}}},
            "auth.api_keys.onec.key",
        ),
        ("bridge", {"commerceml": {"password": "dev-only-commerceml"}}, "commerceml.password"),
        ("bridge", {"commerceml": {"password": "1c-exchange"}}, "commerceml.password"),
        (
            "bridge",
            {"bitrix24": {"application_tokens": {"m": "placeholder-token-0123456789abcdef"}}},
            "bitrix24.application_tokens.m",
        ),
        (
            "egress",
            {"bitrix24": {"webhook_url": "https://portal.bitrix24.ru/rest/1/abc123/"}},
            "bitrix24.webhook_url",
        ),
        (
            "egress",
            {
                "bitrix24": {
                    "auth_mode": "oauth",
                    "oauth": {"client_id": "app.1", "client_secret": "changeme"},
                }
            },
            "bitrix24.oauth.client_secret",
        ),
        (
            "enrich",
            {"bitrix24": {"auth_mode": "oauth", "oauth": {"client_id": "app.1"}}},
            "bitrix24.oauth.client_secret",
        ),
        ("egress", {"onec": {"password": "password"}}, "onec.password"),
        ("poll-odata", {"odata": {"password": "odata"}}, "odata.password"),
        (
            "sink",
            {
                "kafka": {
                    "sasl_mechanism": "PLAIN",
                    "sasl_username": "svc",
                    "security_protocol": "SASL_SSL",
                }
            },
            "kafka.sasl_password",
        ),
        ("registry", {"database_url": "postgresql://mm:postgres@db/mm"}, "database_url"),
        ("sink", {"database_url": "postgresql://mm:<password>@db/mm"}, "database_url"),
    ],
)
def test_each_secret_in_scope_is_checked_for_the_roles_relying_on_it(role, overrides, setting):
    with pytest.raises(ConfigurationError) as err:
        strong_settings(**overrides).check_secrets(role)
    assert setting in str(err.value)


def test_optional_secrets_may_stay_unset():
    # No CommerceML password: the endpoint is off; no 1С / OData password: no Basic auth; a
    # database URL without password: peer or certificate authentication.
    strong_settings(
        commerceml={"password": None},
        onec={"password": ""},
        odata={"password": ""},
        database_url="postgresql://mm@db/mm",
    ).check_secrets("bridge")
    onec = {"password": "", "base_url": "https://erp.trade.local/trade/hs/mm/"}
    strong_settings(onec=onec).check_secrets("egress")


def test_roles_check_only_the_secrets_they_rely_on():
    # A sink never calls Bitrix24, the bridge never uses the webhook: no deployment has to
    # hand every secret to every process.
    weak_hook = strong_settings(
        bitrix24={"webhook_url": "http://127.0.0.1:8081/rest/1/devwebhookcode/"}
    )
    weak_hook.check_secrets("sink")
    weak_hook.check_secrets("bridge")


def test_every_built_in_secret_default_is_refused():
    from mmstream.secrets_policy import secret_weakness

    defaults = Settings(_env_file=None)
    for value in (
        defaults.auth.jwt_secret.get_secret_value(),
        "devwebhookcode",
        "dev-only-commerceml",
        "dev-only-oauth-secret",
    ):
        assert secret_weakness(value) == "is a development or placeholder value"


# ------------------------------------------------------------------ masking URLs


@pytest.mark.parametrize(
    "given,hidden",
    [
        ("https://portal.bitrix24.ru/rest/1/4w0ohv1o5r6z4cgt/", "4w0ohv1o5r6z4cgt"),
        ("https://portal/rest/1/4w0ohv1o5r6z4cgt/crm.deal.get.json", "4w0ohv1o5r6z4cgt"),
        ("http://integration:Qm7Vx2Lp9Rt4@1c.local/trade/hs/mm/", "Qm7Vx2Lp9Rt4"),
        ("http://u:p@ss@host/x", "p@ss"),
        ("https://oauth.bitrix.info/oauth/token/?client_secret=Zk8W&refresh_token=Rt4Z", "Zk8W"),
        ("https://oauth.bitrix.info/oauth/token/?client_secret=Zk8W&refresh_token=Rt4Z", "Rt4Z"),
        ("http://[::1:Qm7Vx/", "Qm7Vx"),  # unparseable: nothing of it is shown
    ],
)
def test_mask_url_hides_every_credential(given, hidden):
    assert hidden not in mask_url(given)


def test_mask_url_keeps_what_identifies_the_endpoint():
    assert (
        mask_url("https://portal.bitrix24.ru/rest/7/4w0ohv1o5r6z4cgt/")
        == "https://portal.bitrix24.ru/rest/7/***/"
    )
    assert (
        mask_url("http://integration:pw@1c.local:8080/trade/hs/mm/?x=1")
        == "http://integration:***@1c.local:8080/trade/hs/mm/?x=1"
    )
