"""The one typed settings object. Nothing else in the code reads the environment.

Every field can be set as ``MM_<SECTION>__<FIELD>`` (e.g. ``MM_KAFKA__BOOTSTRAP_SERVERS``);
``DATABASE_URL`` and ``SCHEMA_REGISTRY_URL`` are accepted as the conventional names too.
Secrets are ``SecretStr`` so they print masked in logs, reprs and ``mmctl config``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class KafkaSettings(BaseModel):
    """Broker connection and client tuning shared by every producer and consumer."""

    bootstrap_servers: str = "127.0.0.1:9092"
    # Prepended to every topic name from topics.yaml: lets tests and tenants share a cluster.
    topic_prefix: str = ""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # Overrides the topic file's replication factor (1 on a single embedded broker).
    replication_factor: int | None = None
    # How long an acknowledged produce may take before the bridge answers 503.
    produce_timeout_s: float = Field(5.0, gt=0)
    linger_ms: int = Field(5, ge=0)
    session_timeout_s: float = Field(10.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    rebalance_timeout_s: float = Field(10.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)

    def client_config(self) -> dict[str, str]:
        """librdkafka connection properties (security included) for confluent-kafka clients."""
        conf = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password.get_secret_value() if self.sasl_password else ""
        return conf


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

    sink_group: str = "mm-sink"
    # The entity sink (every entity but products, which keep their own sink).
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
    """Where the portal keeps the couriers' objects (streams/normalize/bitrix24_{task,item,deal}).

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
        if (self.instant_order_category_id is not None
                and self.instant_order_category_id == self.return_category_id):
            raise ValueError("instant_order_category_id and return_category_id must differ")
        if (self.delivery_entity_type_id is not None
                and self.delivery_entity_type_id == self.return_entity_type_id):
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
    # Outbound events: member_id -> application_token of each portal we accept events from.
    application_tokens: dict[str, SecretStr] = {}
    # Bitrix24 sends near-duplicate events for one change ~2 s apart: one per window passes.
    event_dedupe_window_s: float = Field(10.0, ge=0)
    # Entities fetched per `batch` call by the enrichment worker (Bitrix24 allows 50).
    enrich_batch_max: int = Field(50, ge=1, le=50)
    # Lossless fallback: cursor polling by DATE_MODIFY (Bitrix24 never re-sends events).
    poll_enabled: bool = False
    poll_interval_s: float = Field(60.0, gt=0)
    poll_entities: list[str] = ["deal", "lead", "contact", "company", "task", "product"]
    # Delivery tasks, instant orders and returns in the portal.
    couriers: CourierObjectSettings = CourierObjectSettings()


class OneCSettings(BaseModel):
    """The 1C HTTP service we call for egress to 1C."""

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


class FlowSettings(BaseModel):
    """What the delivery, courier-document and cash flows decide (streams/egress/deliveries.py,
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


class ODataSettings(BaseModel):
    """Pulling changes from a 1C base's standard OData interface (УТ 11)."""

    enabled: bool = False
    base_url: str = "http://127.0.0.1:8082/trade/odata/standard.odata/"
    username: str = "odata"
    password: SecretStr = SecretStr("")
    entity_sets: list[str] = ["Catalog_Номенклатура"]
    poll_interval_s: float = Field(30.0, gt=0)
    page_size: int = Field(500, ge=1)
    # Deleted 1C objects vanish without a tombstone: compare key sets this often.
    reconcile_interval_s: float = Field(3600.0, gt=0)
    timeout_s: float = Field(60.0, gt=0)


class CommerceMLSettings(BaseModel):
    """The stock 1C "exchange with site" (CommerceML 2.x) endpoint of the bridge."""

    username: str = "site"
    password: SecretStr = SecretStr("dev-only-commerceml")
    # Told to 1C in `init`: 1C splits larger files into chunks of this size.
    file_limit_bytes: int = Field(8 * 1024 * 1024, gt=0)
    use_zip: bool = True
    work_dir: Path = REPO_ROOT / ".data" / "commerceml"
    session_ttl_s: int = Field(3600, gt=0)
    # Caps on what one uploaded file and one exchange session may store.
    max_file_bytes: int = Field(1 << 30, gt=0)
    max_session_bytes: int = Field(2 << 30, gt=0)


class OpsSettings(BaseModel):
    """Operator tooling (`mmctl groups`, DLQ replay): who is recorded in the audit trail."""

    # Defaults to the OS user running mmctl; set it where that is a shared account (a pod).
    actor: str | None = None
    # /metrics of the egress workers, where `mmctl health` reads circuit states (they live
    # in those processes). Empty: the embedded stack's egress worker, if it runs.
    circuit_metrics_urls: list[str] = []


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
    flows: FlowSettings = FlowSettings()
    odata: ODataSettings = ODataSettings()
    commerceml: CommerceMLSettings = CommerceMLSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    ops: OpsSettings = OpsSettings()

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.kafka.heartbeat_interval_s * 3 > self.kafka.session_timeout_s:
            raise ValueError(
                "kafka.heartbeat_interval_s must be at most a third of kafka.session_timeout_s"
            )
        if self.retry.base_delay_s > self.retry.max_delay_s:
            raise ValueError("retry.base_delay_s must not exceed retry.max_delay_s")
        if len(self.bitrix24.application_tokens) > 1:
            # Enrichment, polling and egress reach one portal (webhook_url); accepting events
            # of a second portal would fetch its ids from the wrong one.
            raise ValueError("bitrix24.application_tokens names several portals, but this deployment "
                             "talks to one (bitrix24.webhook_url): run one deployment per portal")
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

    def topic(self, name: str) -> str:
        """The physical name of a topic declared in topics.yaml."""
        return f"{self.kafka.topic_prefix}{name}"


def sqlalchemy_url(url: str) -> str:
    """Normalise postgres:// and postgresql:// URLs to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def mask_url(url: str) -> str:
    """The URL with any password replaced, for logs and status output."""
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    if parts.query:
        # libpq URLs may carry the password as a query parameter too.
        query = "&".join(
            f"{k}=***" if k.lower() == "password" else (f"{k}={v}" if sep else k)
            for k, sep, v in (item.partition("=") for item in parts.query.split("&"))
        )
        parts = parts._replace(query=query)
    return urlunsplit(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
