"""The one typed settings object. Nothing else in the code reads the environment.

Every field can be set as ``MM_<SECTION>__<FIELD>`` (e.g. ``MM_KAFKA__BOOTSTRAP_SERVERS``);
``DATABASE_URL`` and ``SCHEMA_REGISTRY_URL`` are accepted as the conventional names too.
Secrets are ``SecretStr`` so they print masked in logs, reprs and ``mmctl config``.
"""

from __future__ import annotations

import re
import ssl
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from mmstream.secrets_policy import SecretRole

REPO_ROOT = Path(__file__).resolve().parents[1]


class KafkaSettings(BaseModel):
    """Broker connection, security and client tuning shared by every producer and consumer.

    One security section serves every client: librdkafka properties for the confluent-kafka
    producers, admin and lag probes (``client_config``), and an ``ssl.SSLContext`` plus SASL
    options for aiokafka and the Faust workers (``aiokafka_security``, ``faust_credentials``).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    # Prepended to every topic name from topics.yaml: lets tests and tenants share a cluster.
    topic_prefix: str = ""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # The mechanisms librdkafka and aiokafka both speak without extra libraries.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # TLS (SSL / SASL_SSL). No CA file: the system's trust store (a public CA).
    ssl_ca_file: Path | None = None
    # Client certificate and key (PEM) for clusters that authenticate clients by TLS (mTLS).
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password: SecretStr | None = None
    # Whether the broker's certificate must name the host dialled; off only for clusters
    # whose certificates name no usable host (and then the CA still has to sign them).
    ssl_check_hostname: bool = True
    # Overrides the topic file's replication factor (1 on a single embedded broker).
    replication_factor: int | None = None
    # How long an acknowledged produce may take before the bridge answers 503.
    produce_timeout_s: float = Field(5.0, gt=0)
    linger_ms: int = Field(5, ge=0)
    session_timeout_s: float = Field(10.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    rebalance_timeout_s: float = Field(10.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        # Kafka's own tools accept either case (sasl_ssl, scram-sha-512).
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent_security(self) -> KafkaSettings:
        # A half-configured security section would otherwise connect without it (librdkafka
        # ignores SASL properties under PLAINTEXT) or fail late with a handshake error.
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and not self.sasl_mechanism:
            raise ValueError(
                f"kafka.security_protocol={self.security_protocol} needs "
                "kafka.sasl_mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )
        if self.sasl_mechanism and not sasl:
            raise ValueError(
                f"kafka.sasl_mechanism is set but kafka.security_protocol is "
                f"{self.security_protocol}: use SASL_SSL (or SASL_PLAINTEXT)"
            )
        if sasl and not self.sasl_username:
            raise ValueError("kafka.sasl_username is required with SASL")
        if not self.tls and (self.ssl_ca_file or self.ssl_cert_file or self.ssl_key_file):
            raise ValueError(
                f"kafka.ssl_* files are set but kafka.security_protocol is "
                f"{self.security_protocol}: use SSL or SASL_SSL"
            )
        if self.ssl_key_file and not self.ssl_cert_file:
            raise ValueError("kafka.ssl_key_file needs kafka.ssl_cert_file")
        return self

    @property
    def tls(self) -> bool:
        """Whether connections to the brokers are TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def client_config(self) -> dict[str, str]:
        """librdkafka connection properties (security included) for confluent-kafka clients."""
        conf = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else ""
            )
        if self.tls:
            _require_files("kafka", self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file)
            if self.ssl_ca_file:
                conf["ssl.ca.location"] = str(self.ssl_ca_file)
            if self.ssl_cert_file:
                conf["ssl.certificate.location"] = str(self.ssl_cert_file)
            if self.ssl_key_file:
                conf["ssl.key.location"] = str(self.ssl_key_file)
            if self.ssl_key_password:
                conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_check_hostname else "none"
            )
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the Python clients (aiokafka, Faust); None without TLS."""
        if not self.tls:
            return None
        _require_files("kafka", self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file)
        context = ssl.create_default_context(
            cafile=str(self.ssl_ca_file) if self.ssl_ca_file else None
        )
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_cert_file:
            context.load_cert_chain(
                str(self.ssl_cert_file),
                str(self.ssl_key_file) if self.ssl_key_file else None,
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
            )
        return context

    def aiokafka_security(self) -> dict[str, object]:
        """Keyword arguments of aiokafka's clients for the security settings."""
        kwargs: dict[str, object] = {"security_protocol": self.security_protocol}
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.sasl_mechanism:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.get_secret_value()
                if self.sasl_password
                else "",
            )
        return kwargs

    def faust_credentials(self) -> object | None:
        """``broker_credentials`` of a Faust app (faust.SASLCredentials / SSLCredentials)."""
        import faust

        context = self.ssl_context()
        if self.sasl_mechanism:
            # With an SSL context Faust speaks SASL_SSL, without one SASL_PLAINTEXT.
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password.get_secret_value() if self.sasl_password else "",
                ssl_context=context,
                mechanism=self.sasl_mechanism,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None


class RegistrySettings(BaseModel):
    """Authentication and TLS of the schema registry (its URL is ``SCHEMA_REGISTRY_URL``).

    Basic auth (Confluent / Karapace users, Confluent Cloud API keys) or a static bearer
    token; TLS trusts ``ssl_ca_file`` (else the system's store) and may present a client
    certificate. Credentials may also sit in the URL (https://user:pass@host); not both.
    """

    basic_auth_username: str | None = None
    basic_auth_password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    # Confluent Cloud's bearer auth names the registry cluster (lsrc-…) and the identity pool.
    bearer_logical_cluster: str = ""
    bearer_identity_pool: str | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _one_auth(self) -> RegistrySettings:
        if self.bearer_token and (self.basic_auth_username or self.basic_auth_password):
            raise ValueError("registry: set basic auth or a bearer token, not both")
        if self.basic_auth_password and not self.basic_auth_username:
            raise ValueError("registry.basic_auth_password needs registry.basic_auth_username")
        if self.ssl_key_file and not self.ssl_cert_file:
            raise ValueError("registry.ssl_key_file needs registry.ssl_cert_file")
        return self

    def client_config(self, url: str) -> dict[str, object]:
        """The configuration of confluent-kafka's SchemaRegistryClient for ``url``."""
        conf: dict[str, object] = {"url": url, "timeout": self.timeout_s}
        if self.basic_auth_username:
            password = (
                self.basic_auth_password.get_secret_value() if self.basic_auth_password else ""
            )
            conf["basic.auth.user.info"] = f"{self.basic_auth_username}:{password}"
        if self.bearer_token:
            conf.update(
                {
                    "bearer.auth.credentials.source": "STATIC_TOKEN",
                    "bearer.auth.token": self.bearer_token.get_secret_value(),
                    "bearer.auth.logical.cluster": self.bearer_logical_cluster,
                }
            )
            if self.bearer_identity_pool:
                conf["bearer.auth.identity.pool.id"] = self.bearer_identity_pool
        _require_files("registry", self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file)
        if self.ssl_ca_file:
            conf["ssl.ca.location"] = str(self.ssl_ca_file)
        if self.ssl_cert_file:
            conf["ssl.certificate.location"] = str(self.ssl_cert_file)
        if self.ssl_key_file:
            conf["ssl.key.location"] = str(self.ssl_key_file)
        return conf


def _require_files(section: str, *paths: Path | None) -> None:
    # Checked when a client is built, not when settings load: `mmctl config` must still show
    # a configuration whose files are mounted elsewhere.
    from mmstream.errors import ConfigurationError

    for path in paths:
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{section}: TLS file {path} does not exist or is not a file")


class IngressSettings(BaseModel):
    """The HTTP bridge that source systems post to."""

    host: str = "127.0.0.1"
    port: int = 8080
    # Large enough for a full batch (1000 OData-shaped records are ~3 MB).
    max_body_bytes: int = Field(8 * 1_048_576, gt=0)
    max_batch_records: int = Field(1000, gt=0)
    # Seconds a client is told to wait after a 503 (broker unavailable or slow).
    retry_after_s: int = Field(5, gt=0)
    # Per-client (token subject / API key name) leaky bucket; over it: 429 + Retry-After.
    client_rate_per_s: float = Field(200.0, gt=0)
    client_burst: int = Field(400, ge=1)
    # How long an Idempotency-Key and its answer are remembered.
    idempotency_ttl_s: int = Field(86_400, gt=0)
    # How long a 1С exchange message number (X-1C-Message-No) and its answer are remembered:
    # 1С re-sends a message until acknowledged, within hours, never months later.
    exchange_message_retention_s: int = Field(30 * 86_400, gt=0)
    # How often the bridge deletes expired idempotency keys and old exchange message numbers,
    # and how many rows one DELETE takes (it loops until nothing expired is left).
    purge_interval_s: float = Field(60.0, gt=0)
    purge_batch_rows: int = Field(5000, gt=0)
    # The largest record the bridge publishes (value + key + headers): the raw topics'
    # max.message.bytes and the producer's message.max.bytes (both 1,000,000 by default).
    # A bigger record is refused 413 record_too_large (a 503 would make 1С re-send it forever).
    max_record_bytes: int = Field(1_000_000, gt=0)
    # JSON bodies nested deeper than this are refused 400 json_too_deep (records are ~4 deep).
    max_json_depth: int = Field(64, ge=2, le=500)
    # Bitrix24 event forms are a few hundred bytes; anything far bigger is not Bitrix24.
    event_max_body_bytes: int = Field(64 * 1024, gt=0)
    # Bridge database connections (idempotency keys, exchange numbers, event dedupe):
    # a stalled PostgreSQL must give a quick 503, not hang requests and fill the pool.
    db_connect_timeout_s: int = Field(5, ge=1)
    db_statement_timeout_s: float = Field(10.0, gt=0)
    db_pool_timeout_s: float = Field(5.0, gt=0)
    # Rate limit of requests no verified caller can be named for (forged Bitrix24 events,
    # junk, refused credentials): one bucket per client address, apart from the verified
    # callers' buckets, so a flood of junk never uses up a real portal's or source's budget.
    unverified_rate_per_s: float = Field(20.0, gt=0)
    unverified_burst: int = Field(40, ge=1)


class ApiKey(BaseModel):
    """A static per-source key (``X-API-Key``) for systems that cannot send a JWT."""

    key: SecretStr
    roles: list[str] = ["1c"]


class AuthSettings(BaseModel):
    """Bearer-token verification at the bridge (HS256 JWTs with a ``roles`` claim)."""

    jwt_secret: SecretStr = SecretStr("dev-only-change-me-0123456789abcdef")
    jwt_algorithm: str = "HS256"
    jwt_audience: str = "mastermobile-stream"
    jwt_issuer: str | None = None
    # name -> key; e.g. MM_AUTH__API_KEYS='{"onec-main": {"key": "...", "roles": ["1c"]}}'
    api_keys: dict[str, ApiKey] = {}


class StreamsSettings(BaseModel):
    """Faust workers: consumer groups and batching."""

    # No worker of its own since products joined the entity sink: the prefix of the
    # Bitrix24 enrichment's group (``<sink_group>-enrich-bitrix24``), kept so that group
    # keeps its committed offsets.
    sink_group: str = "mm-sink"
    # The one sink of every entity, products included.
    entity_sink_group: str = "mm-sink-entities"
    egress_group: str = "mm-egress"
    batch_max: int = Field(1000, gt=0)
    batch_within_s: float = Field(0.5, gt=0)
    # Port of the worker's own Prometheus endpoint; 0 disables it.
    metrics_port: int = 0
    # Loopback by default (a laptop); containers set 0.0.0.0 so Prometheus can scrape.
    metrics_host: str = "127.0.0.1"
    # How often a worker re-publishes outbox entries left behind by a crash.
    outbox_sweep_interval_s: float = Field(2.0, gt=0)
    # How often each worker recomputes its group's consumer lag (mm_consumer_lag).
    lag_interval_s: float = Field(10.0, gt=0)
    # Changes of different entities an egress worker delivers at once, over all its agents
    # (one entity's changes always go one after the other). Their Bitrix24 calls share
    # `batch` calls, so this is what fills a batch: a change costs one command per round
    # trip, and two batch calls of 50 are in flight, so ~100 and more keep the default
    # portal budget full. Deliveries hold a lease row, not a connection.
    egress_concurrency: int = Field(200, ge=1, le=2000)
    # Database connections of an egress worker (pool, and as many again in overflow): the
    # deliveries in flight share them for their short statements.
    egress_db_pool: int = Field(10, ge=1, le=100)


class RetrySettings(BaseModel):
    """Egress retry policy: exponential backoff with full jitter, bounded by attempts and time."""

    max_attempts: int = Field(8, ge=1)
    base_delay_s: float = Field(0.5, gt=0)
    max_delay_s: float = Field(30.0, gt=0)
    budget_s: float = Field(300.0, gt=0)
    # In-line attempts before a change leaves its partition for the delayed retry path
    # (egress_parked): a failing entity must not hold up the others of its partition.
    inline_attempts: int = Field(3, ge=1)
    inline_budget_s: float = Field(5.0, gt=0)
    # How often the delayed path looks for parked changes that are due, and how long a
    # worker holds a claimed one before another worker may take it over.
    parked_poll_s: float = Field(1.0, gt=0)
    parked_lease_s: float = Field(120.0, gt=0)
    # A delivery's hold on its entity (egress_lease), renewed every third of it while the
    # delivery runs: a killed worker's entities wait at most this long for another worker.
    delivery_lease_s: float = Field(15.0, ge=3)
    # The longest one egress write to a target may take (the egress worker's client timeouts
    # are capped to it): a write starts only while the lease outlasts it, so a stalled
    # worker's write cannot land after another worker took the entity (stages/egress/
    # fencing.py). Unset: half the lease. Must stay below 3/5 of the lease (lease
    # statements get a fifth each).
    delivery_write_timeout_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _write_fits_the_lease(self) -> RetrySettings:
        if (
            self.delivery_write_timeout_s is not None
            and self.delivery_write_timeout_s >= self.delivery_lease_s * 0.6
        ):
            raise ValueError(
                "retry.delivery_write_timeout_s must be below 3/5 of retry.delivery_lease_s"
            )
        return self

    @property
    def write_timeout_s(self) -> float:
        """The egress write timeout in force (see ``delivery_write_timeout_s``)."""
        return self.delivery_write_timeout_s or self.delivery_lease_s / 2


class CircuitSettings(BaseModel):
    """A circuit breaker per target: opened by consecutive transient failures (or at once by
    a target-wide block), closed again by one successful probe after the cool-down."""

    failure_threshold: int = Field(5, ge=1)
    cool_down_s: float = Field(30.0, gt=0)
    # Each failed probe doubles the cool-down up to this.
    max_cool_down_s: float = Field(300.0, gt=0)


class Bitrix24OAuthSettings(BaseModel):
    """A Bitrix24 OAuth application (``auth_mode = "oauth"``).

    The initial tokens seed the token table once; from then on the table holds the current
    pair (every refresh rotates both tokens, and the old refresh token stops working).
    """

    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    # The portal: a domain (https assumed) or a base URL such as http://127.0.0.1:8081.
    portal: str = ""
    access_token: SecretStr = SecretStr("")
    refresh_token: SecretStr = SecretStr("")
    # The vendor's token endpoint (GET with query parameters, as documented).
    token_url: str = "https://oauth.bitrix.info/oauth/token/"  # noqa: S105 — a URL, not a secret
    # Refresh this long before the recorded expiry instead of waiting for expired_token.
    refresh_margin_s: float = Field(60.0, ge=0)


class CourierObjectSettings(BaseModel):
    """Where the portal keeps the couriers' objects (stages/normalize/bitrix24_{task,item,deal}).

    Field names are as the get methods answer them: tasks.task and crm.item camelCase
    (``xmlId``, ``ufCrm5_Collected``), crm.deal UPPER_CASE (``UF_CRM_MM_ADDRESS``). The
    ``*_fields`` maps name a canonical field -> the portal field holding it; unmapped fields
    stay empty.
    """

    # Where we write our canonical id when we create a delivery task. XML_ID is answered by
    # tasks.task.get without a select (a UF_* task field would need one).
    task_id_field: str = "xmlId"
    task_fields: dict[str, str] = {}
    # Smart process (entityTypeId) whose items are delivery tasks; None: deliveries are tasks.
    delivery_entity_type_id: int | None = Field(None, ge=128)
    delivery_item_id_field: str = "xmlId"
    delivery_item_fields: dict[str, str] = {}
    # Deal funnels (CATEGORY_ID) couriers start instant orders and returns in; None: unused.
    instant_order_category_id: int | None = Field(None, ge=0)
    return_category_id: int | None = Field(None, ge=0)
    # A deal field holding our canonical id when we created the deal (else the id is derived).
    deal_id_field: str = "ORIGIN_ID"
    deal_fields: dict[str, str] = {}
    # Smart process of returns started by couriers; None: returns are deals only.
    return_entity_type_id: int | None = Field(None, ge=128)
    return_item_id_field: str = "xmlId"
    return_item_fields: dict[str, str] = {}

    @model_validator(mode="after")
    def _distinct(self) -> CourierObjectSettings:
        # One funnel or smart process holding two kinds of object cannot be told apart.
        if (
            self.instant_order_category_id is not None
            and self.instant_order_category_id == self.return_category_id
        ):
            raise ValueError("instant_order_category_id and return_category_id must differ")
        if (
            self.delivery_entity_type_id is not None
            and self.delivery_entity_type_id == self.return_entity_type_id
        ):
            raise ValueError("delivery_entity_type_id and return_entity_type_id must differ")
        return self


class Bitrix24Settings(BaseModel):
    """A Bitrix24 portal reached through an incoming webhook or an OAuth application."""

    # https://PORTAL/rest/USER_ID/CODE/ — the webhook code is a secret.
    webhook_url: SecretStr = SecretStr("http://127.0.0.1:8081/rest/1/devwebhookcode/")
    auth_mode: Literal["webhook", "oauth"] = "webhook"
    oauth: Bitrix24OAuthSettings = Bitrix24OAuthSettings()
    rate_per_s: float = Field(2.0, gt=0)
    burst: int = Field(50, ge=1)
    # This worker's share of the portal budget is rate/N and burst/N over the N workers of
    # the egress group: N from here, else from the group's member count (1 if unknown).
    budget_workers: int | None = Field(None, ge=1)
    # After QUERY_LIMIT_EXCEEDED the rate drops by this factor, then regains this fraction
    # of the full rate per second without refusals.
    budget_backoff_factor: float = Field(0.5, gt=0, lt=1)
    budget_recovery_per_s: float = Field(0.05, gt=0)
    circuit: CircuitSettings = CircuitSettings()
    timeout_s: float = Field(60.0, gt=0)
    # Egress packs concurrent calls into one `batch` call: a batch leaves when 50 commands
    # wait or this long after the first one.
    pack_linger_s: float = Field(0.05, gt=0)
    product_iblock_id: int = 14
    # Dates without an offset (some list methods) are wall-clock times of the portal.
    portal_timezone: str = "Europe/Moscow"
    # Outbound events: member_id -> application_token of THE portal we accept events from.
    # One portal per deployment: enrichment, polling and egress reach one portal
    # (webhook_url / oauth.portal), so a second portal's events would be fetched from the
    # wrong one. A mapping (not two fields) so the env form names the member_id with it.
    application_tokens: dict[str, SecretStr] = {}
    # Bitrix24 sends near-duplicate events for one change ~2 s apart: one per window passes.
    event_dedupe_window_s: float = Field(10.0, ge=0)
    # Entities fetched per `batch` call by the enrichment worker (Bitrix24 allows 50).
    enrich_batch_max: int = Field(50, ge=1, le=50)
    # Lossless fallback: cursor polling by DATE_MODIFY (Bitrix24 never re-sends events), on
    # by default: a dropped event arrives within one interval. Its cost is bounded: an idle
    # cycle is 2 list calls per entity (10 a minute by default, ~8% of the 2 calls/s budget),
    # and a backlog is paged through at most poll_max_pages pages per entity and cycle.
    poll_enabled: bool = True
    poll_interval_s: float = Field(60.0, gt=0)
    poll_max_pages: int = Field(2, ge=1)
    poll_entities: list[str] = ["deal", "contact", "company", "task", "product"]
    # Delivery tasks, instant orders and returns in the portal.
    couriers: CourierObjectSettings = CourierObjectSettings()

    @field_validator("application_tokens")
    @classmethod
    def _one_portal(cls, tokens: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if len(tokens) > 1:
            # A custom error: its message is the whole line `mmctl` prints (no "Value error,").
            raise PydanticCustomError(
                "one_portal",
                "this deployment serves one Bitrix24 portal, but {count} are configured "
                "({members}); enrichment, polling and egress reach one portal, so run one "
                "deployment per portal",
                {"count": len(tokens), "members": ", ".join(sorted(tokens))},
            )
        return tokens


class OneCWriteVia(BaseModel):
    """Which interface each flow writes 1С through (stages/egress/onec_odata.py, README):
    ``http_service`` — our extension's HTTP service (http_service.openapi.yaml), the default;
    ``odata`` — the standard OData interface a stock УТ publishes (no extension needed);
    ``commerceml`` — instant orders and returns as orders of the stock exchange with site.
    Env: ``MM_ONEC__WRITE_VIA__INSTANT_ORDER=odata`` (``…__RETURNS``, ``…__DELIVERY_STATUS``)."""

    delivery_status: Literal["http_service", "odata"] = "http_service"
    instant_order: Literal["http_service", "odata", "commerceml"] = "http_service"
    # `return` is a Python keyword: the field is `returns`, settable as `return` too.
    returns: Literal["http_service", "odata", "commerceml"] = Field(
        "http_service", validation_alias=AliasChoices("returns", "return")
    )


class ODataWriteSettings(BaseModel):
    """What the OData write mode creates and changes in a stock base
    (stages/egress/onec_odata.py). Entity sets left empty are the configuration's:
    УТ 11 ЗаказКлиента / ВозвратТоваровОтКлиента, УТ 10.3 ЗаказПокупателя /
    ВозвратТоваровОтПокупателя (connectors/onec/objects.py)."""

    configuration: Literal["ut11", "ut103"] = "ut11"
    order_entity_set: str = ""
    shipment_entity_set: str = ""
    return_entity_set: str = ""
    # Constant fields every created document gets (a stock УТ 11 needs e.g. Организация_Key,
    # Валюта_Key, Склад_Key, Партнер_Key, Соглашение_Key to post an order).
    order_defaults: dict[str, str | int | float | bool] = {}
    return_defaults: dict[str, str | int | float | bool] = {}
    # Delivery confirmation: a line "<marker> <task>: <status>" appended to this text field
    # of the order / shipment (a stock base has no delivery-status attribute) ...
    delivery_comment_field: str = "Комментарий"
    delivery_marker: str = "[MM доставка]"
    # ... and optionally an enum field set per final status, e.g. Статус with
    # {"delivered": "Закрыт"} for a УТ 11 ЗаказКлиента. Empty: not written.
    delivery_status_field: str = ""
    delivery_status_values: dict[str, str] = {}


class OneCSettings(BaseModel):
    """The 1С HTTP service we call for egress to 1С."""

    base_url: str = "http://127.0.0.1:8082/trade/hs/mm/"
    # 1С dates carry no zone: they are wall-clock times of the base's time zone.
    timezone: str = "Europe/Moscow"
    username: str = "integration"
    password: SecretStr = SecretStr("")
    # Seconds for the whole call; posting a large document in 1С can take a while.
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    # The base's standard OData interface, used to post documents (…/Document_X(guid'…')/Post)
    # where the base publishes it. Empty: the same publication as base_url
    # (http://host/trade/hs/mm/ -> http://host/trade/odata/standard.odata/).
    odata_url: str = ""
    circuit: CircuitSettings = CircuitSettings()
    # Per flow: the extension's HTTP service, the stock OData interface or CommerceML.
    write_via: OneCWriteVia = OneCWriteVia()
    odata_writes: ODataWriteSettings = ODataWriteSettings()


class FlowSettings(BaseModel):
    """What the delivery, courier-document and cash flows decide (stages/egress/deliveries.py,
    courier_documents.py, cash.py)."""

    # Orders with a delivery address become delivery tasks; without one the customer collects
    # the goods, so there is nothing for a courier to do.
    delivery_needs_address: bool = True
    # Bitrix24 user a new delivery task is given to until a dispatcher assigns a courier.
    delivery_responsible_id: int = Field(1, ge=1)
    # Deal fields (UPPER_CASE user fields) the status of a courier's instant order or return,
    # and the number of the 1С document made of it, are written back to.
    deal_status_field: str = "UF_CRM_MM_STATUS"
    deal_document_field: str = "UF_CRM_MM_ONEC_NUMBER"
    # What 1С makes of an instant order: a customer order or straight away a shipment.
    instant_order_document: Literal["order", "shipment"] = "order"
    # Post the 1С documents the middleware creates (instant orders, returns).
    post_documents: bool = True
    # Cash documents (ПКО, РКО, advance reports) 1С holds unposted are posted by the
    # middleware; one posted later than its document date + this SLA is a deviation.
    post_cash_documents: bool = True
    cash_sla_s: float = Field(900.0, gt=0)
    # The SLA watch (stages/egress/cash_sla.py, a timer of the egress worker): how often it
    # looks for cash documents still unposted past their SLA (0 = off), and how far back —
    # older drafts (before the watch ran) are not raised, so a first start is no flood.
    cash_sla_watch_interval_s: float = Field(60.0, ge=0)
    cash_sla_watch_horizon_s: float = Field(7 * 86400.0, gt=0)


class ODataSettings(BaseModel):
    """Pulling changes from a 1С base's standard OData interface (УТ 11)."""

    enabled: bool = False
    base_url: str = "http://127.0.0.1:8082/trade/odata/standard.odata/"
    username: str = "odata"
    password: SecretStr = SecretStr("")
    entity_sets: list[str] = ["Catalog_Номенклатура"]
    poll_interval_s: float = Field(30.0, gt=0)
    page_size: int = Field(500, ge=1)
    # Deleted 1С objects vanish without a tombstone: compare key sets this often.
    reconcile_interval_s: float = Field(3600.0, gt=0)
    timeout_s: float = Field(60.0, gt=0)


class CommerceMLSettings(BaseModel):
    """The stock 1С "exchange with site" (CommerceML 2.x) endpoint of the bridge."""

    username: str = "site"
    # No default: unset, the endpoint is off (answers 404 commerceml_disabled). The embedded
    # stack (`mmctl run`) sets a development value.
    password: SecretStr | None = None
    # Told to 1С in `init`: 1С splits larger files into chunks of this size.
    file_limit_bytes: int = Field(8 * 1024 * 1024, gt=0)
    use_zip: bool = True
    # Scratch space for files being imported (large ones spill here). Not inside the package:
    # site-packages is read-only in the image; deployments mount a volume and set
    # MM_COMMERCEML__WORK_DIR.
    work_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "mmstream-commerceml"
    )
    session_ttl_s: int = Field(3600, gt=0)
    # Caps on what one uploaded file and one exchange session may store, on what all sessions
    # together may store, and on how many sessions may be open at once (a new checkauth
    # beyond it is refused 503 too_many_sessions until one expires).
    max_file_bytes: int = Field(1 << 30, gt=0)
    max_session_bytes: int = Field(2 << 30, gt=0)
    max_total_bytes: int = Field(4 << 30, gt=0)
    max_sessions: int = Field(100, gt=0)
    # Zip archives: at most this many entries, this many bytes unpacked in all, and no
    # member (over 1 MiB) unpacking to more than ratio × its packed size. 1С's XML packs
    # 10-30×; a zip bomb packs thousands×.
    max_zip_members: int = Field(50_000, gt=0)
    max_unpacked_bytes: int = Field(2 << 30, gt=0)
    max_zip_ratio: int = Field(200, gt=1)
    # The names (property dictionaries, price types, warehouses, groups) kept for the later
    # files of a session and per catalog, as JSON: a bigger set is not kept (logged), and
    # later files resolve only what they declare themselves.
    max_context_bytes: int = Field(32 << 20, gt=0)


class OpsSettings(BaseModel):
    """Operator tooling (`mmctl groups`, DLQ replay): who is recorded in the audit trail."""

    # Defaults to the OS user running mmctl; set it where that is a shared account (a pod).
    actor: str | None = None
    # /metrics of the egress workers, where `mmctl health` reads circuit states (they live
    # in those processes). Empty: the embedded stack's egress worker, if it runs.
    circuit_metrics_urls: list[str] = []


class ReconcileSettings(BaseModel):
    """The end-to-end reconcile (stages/reconcile/, ``mmctl reconcile``): what PostgreSQL
    holds compared with Bitrix24 and 1С, repaired through the normal path."""

    # The scheduled run (`mmctl reconcile --schedule`): seconds between runs; one replica
    # runs it at a time (a PostgreSQL advisory lock).
    interval_s: float = Field(3600.0, gt=0)
    # Share of the portal's request budget (bitrix24.rate_per_s / burst) the listing may use,
    # so a reconcile never starves the egress workers.
    budget_share: float = Field(0.2, gt=0, le=1)
    # Rows per Bitrix24 list call (the portal serves 50 a page).
    page_size: int = Field(50, ge=1, le=50)
    # An object whose last change was published less than this ago and is not delivered
    # yet is in flight, not judged (it would show as drift the pipeline is fixing anyway).
    in_flight_grace_s: float = Field(300.0, ge=0)
    # Entities compared when none is named: master data, then the operational records
    # (delivery tasks in Bitrix24; courier and cash documents in 1С, read by our ids).
    entities: list[str] = [
        "product",
        "warehouse",
        "price_type",
        "counterparty",
        "price",
        "delivery_task",
        "instant_order",
        "return",
        "cash_receipt",
        "cash_expense",
        "advance_report",
    ]
    # The 1С entity set read (over OData, when odata.base_url answers) for "newer at the
    # source" per entity; an entity not listed is not compared with 1С.
    onec_sets: dict[str, str] = {
        "product": "Catalog_Номенклатура",
        "warehouse": "Catalog_Склады",
        "price_type": "Catalog_ВидыЦен",
        "counterparty": "Catalog_Контрагенты",
    }


class RetentionSettings(BaseModel):
    """How long operational rows are kept (issue 14 item 6), and the integration log's writer.

    Purged by the bridge's purge job (connectors/ingress/purge.py), in batches, every
    ``ingress.purge_interval_s``: e.g. ``MM_RETENTION__INTEGRATION_LOG_DAYS=90``."""

    # Every outbound call to 1С / Bitrix24 (mmstream/trace/journal.py): at least 90 days.
    integration_log_days: int = Field(90, gt=0)
    # Published outbox rows (unpublished ones are never purged: the relay still owes them).
    outbox_days: int = Field(30, gt=0)
    # Operator actions (offset resets, replays): "who did this" is asked months later.
    ops_audit_days: int = Field(365, gt=0)
    # The integration log's writer: a bounded queue drained off the hot path in batches.
    # A full queue drops the entry (counted in mm_integration_log_dropped_total) rather
    # than slowing a delivery down.
    integration_log_enabled: bool = True
    integration_log_queue: int = Field(10_000, gt=0)
    integration_log_batch: int = Field(500, gt=0)
    integration_log_flush_s: float = Field(0.5, gt=0)
    # Request / response text kept per call (after masking), in characters.
    integration_log_excerpt_chars: int = Field(2000, ge=100)


class EmbeddedSettings(BaseModel):
    """Ports and data folder of the embedded stack that ``mmctl run`` starts."""

    data_dir: Path = REPO_ROOT / ".data"
    kafka_port: int = 9092
    postgres_port: int = 54329
    bitrix24_port: int = 8081
    onec_port: int = 8082
    registry_port: int = 8083
    sink_metrics_port: int = 9101
    egress_metrics_port: int = 9102
    enrich_metrics_port: int = 9103
    # The status page (charts of throughput, lag and DLQ counts) of `mmctl run`.
    status_port: int = 8084
    workers: int = Field(1, ge=1)
    demo: bool = True
    # Changes per second the demo posts. Bitrix24's default budget is 2 calls/s, so a
    # faster demo shows egress lag growing (true to life) rather than a steady state.
    demo_rate_per_s: float = Field(3.0, gt=0)


class StockSettings(BaseModel):
    """Couriers' walking warehouses (stages/egress/bitrix24_stock.py).

    ``walking_warehouses`` maps a 1С warehouse (Склады Ref_Key) to the Bitrix24 user id of
    the courier carrying it, e.g. ``MM_STOCK__WALKING_WAREHOUSES='{"<guid>": 7}'``. An instant
    order assigned to that user reserves its goods from that warehouse. One warehouse per
    courier: two would leave the reservation ambiguous."""

    walking_warehouses: dict[str, int] = {}

    @field_validator("walking_warehouses")
    @classmethod
    def _one_per_courier(cls, value: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for guid, user in value.items():
            try:
                key = str(UUID(guid))
            except ValueError:
                raise ValueError(
                    f"walking_warehouses: {guid!r} is not a 1С warehouse GUID"
                ) from None
            if user < 1:
                raise ValueError(f"walking_warehouses: {guid}: {user} is not a Bitrix24 user id")
            out[key] = user
        users = list(out.values())
        doubled = sorted({u for u in users if users.count(u) > 1})
        if doubled:
            raise ValueError(f"walking_warehouses: users {doubled} carry more than one warehouse")
        return out

    def warehouse_of(self, user_id: int) -> str | None:
        """The walking warehouse (GUID) of Bitrix24 user ``user_id``, if they carry one."""
        return next(
            (guid for guid, user in self.walking_warehouses.items() if user == user_id), None
        )


class Settings(BaseSettings):
    """Everything configurable, from ``MM_*`` environment variables (and ``.env``)."""

    model_config = SettingsConfigDict(
        env_prefix="MM_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MM_DATABASE_URL", "DATABASE_URL")
    )
    schema_registry_url: str | None = Field(
        None, validation_alias=AliasChoices("MM_SCHEMA_REGISTRY_URL", "SCHEMA_REGISTRY_URL")
    )
    # Authentication and TLS of that registry (MM_REGISTRY__*).
    registry: RegistrySettings = RegistrySettings()
    # "embedded": a child of `mmctl run` (or `mmctl bench`), which may run on the development
    # secrets. Everything else is production and refuses them (check_secrets). Never set
    # MM_PROFILE in a deployment.
    profile: Literal["production", "embedded"] = "production"
    log_level: str = "INFO"
    log_format: str = Field("json", pattern="^(json|console)$")
    service_name: str = "mmstream"
    topics_file: Path = REPO_ROOT / "topics.yaml"
    schemas_dir: Path = REPO_ROOT / "avro"
    migrations_dir: Path = REPO_ROOT / "migrations"

    kafka: KafkaSettings = KafkaSettings()
    ingress: IngressSettings = IngressSettings()
    auth: AuthSettings = AuthSettings()
    streams: StreamsSettings = StreamsSettings()
    retry: RetrySettings = RetrySettings()
    bitrix24: Bitrix24Settings = Bitrix24Settings()
    onec: OneCSettings = OneCSettings()
    stock: StockSettings = StockSettings()
    flows: FlowSettings = FlowSettings()
    odata: ODataSettings = ODataSettings()
    commerceml: CommerceMLSettings = CommerceMLSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    ops: OpsSettings = OpsSettings()
    retention: RetentionSettings = RetentionSettings()
    reconcile: ReconcileSettings = ReconcileSettings()

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.kafka.heartbeat_interval_s * 3 > self.kafka.session_timeout_s:
            raise ValueError(
                "kafka.heartbeat_interval_s must be at most a third of kafka.session_timeout_s"
            )
        if self.retry.base_delay_s > self.retry.max_delay_s:
            raise ValueError("retry.base_delay_s must not exceed retry.max_delay_s")
        return self

    def require_database_url(self) -> str:
        """The SQLAlchemy URL (psycopg 3 driver), or a ConfigurationError saying how to set it."""
        from mmstream.errors import ConfigurationError

        if self.database_url is None:
            raise ConfigurationError(
                "no database configured: set DATABASE_URL (or MM_DATABASE_URL), "
                "or use `mmctl run`, which starts an embedded PostgreSQL"
            )
        return sqlalchemy_url(self.database_url.get_secret_value())

    def registry_client_config(self) -> dict[str, object]:
        """SchemaRegistryClient configuration (URL, auth, TLS), or a ConfigurationError."""
        from mmstream.errors import ConfigurationError

        if not self.schema_registry_url:
            raise ConfigurationError(
                "no schema registry configured: set SCHEMA_REGISTRY_URL (or MM_SCHEMA_REGISTRY_URL)"
            )
        return self.registry.client_config(self.schema_registry_url)

    def topic(self, name: str) -> str:
        """The physical name of a topic declared in topics.yaml."""
        return f"{self.kafka.topic_prefix}{name}"

    def check_secrets(self, role: SecretRole) -> None:
        """Refuse a development, placeholder or short secret that ``role`` relies on
        (design.md invariant 11): mmstream.secrets_policy.check_secrets."""
        from mmstream.secrets_policy import check_secrets

        check_secrets(self, role)


def sqlalchemy_url(url: str) -> str:
    """Normalise postgres:// and postgresql:// URLs to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# Query parameters that carry a credential (libpq's password, OAuth and API tokens).
_SECRET_QUERY = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "auth",
        "api_key",
        "apikey",
        "key",
        "sig",
        "signature",
    }
)
# Bitrix24 incoming webhooks: https://PORTAL/rest/USER_ID/CODE/ — the CODE is the secret.
WEBHOOK_CODE = re.compile(r"(/rest/[^/]+/)([^/]+)")


def mask_url(url: str) -> str:
    """The URL with every credential in it replaced by ***, for logs and status output: the
    userinfo password, credential query parameters and a Bitrix24 webhook code."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL after all (a bad port, an unclosed [): show nothing of it
        return "***"
    if password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}")
    if parts.query:
        query = "&".join(
            f"{k}=***" if k.lower() in _SECRET_QUERY else (f"{k}={v}" if sep else k)
            for k, sep, v in (item.partition("=") for item in parts.query.split("&"))
        )
        parts = parts._replace(query=query)
    parts = parts._replace(path=WEBHOOK_CODE.sub(r"\1***", parts.path, count=1))
    return urlunsplit(parts)


def masked_config(settings: Settings) -> dict:
    """The settings as JSON-ready data for `mmctl config`: secrets as stars, and the URLs
    that carry credentials (database, webhook, and any base URL with a password in it)
    readable with those credentials masked."""

    def walk(value: Any) -> Any:  # JSON data in, JSON data out
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and "://" in value:
            return mask_url(value)
        return value

    data = walk(settings.model_dump(mode="json"))
    if settings.database_url is not None:
        data["database_url"] = mask_url(settings.database_url.get_secret_value())
    data["bitrix24"]["webhook_url"] = mask_url(settings.bitrix24.webhook_url.get_secret_value())
    return data


# The dotenv file get_settings() reads (relative to the working directory); None: none.
# `mmctl` sets it to None unless --env-file names one (mmstream/cli/connection.py): a stray
# .env in the current folder must not pick the cluster.
ENV_FILE: Path | str | None = ".env"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment (and ENV_FILE)."""
    return Settings(_env_file=ENV_FILE)
