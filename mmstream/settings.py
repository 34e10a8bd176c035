"""The one typed settings object. Nothing else in the code reads the environment.

Every field can be set as ``MM_<SECTION>__<FIELD>`` (e.g. ``MM_KAFKA__BOOTSTRAP_SERVERS``);
``DATABASE_URL`` and ``SCHEMA_REGISTRY_URL`` are accepted as the conventional names too.
Secrets are ``SecretStr`` so they print masked in logs, reprs and ``mmctl config``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
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
    egress_group: str = "mm-egress"
    batch_max: int = Field(1000, gt=0)
    batch_within_s: float = Field(0.5, gt=0)
    # Port of the worker's own Prometheus endpoint; 0 disables it.
    metrics_port: int = 0
    # Loopback by default (a laptop); containers set 0.0.0.0 so Prometheus can scrape.
    metrics_host: str = "127.0.0.1"
    # How often a worker re-publishes outbox entries left behind by a crash.
    outbox_sweep_interval_s: float = Field(2.0, gt=0)


class RetrySettings(BaseModel):
    """Egress retry policy: exponential backoff with full jitter, bounded by attempts and time."""

    max_attempts: int = Field(8, ge=1)
    base_delay_s: float = Field(0.5, gt=0)
    max_delay_s: float = Field(30.0, gt=0)
    budget_s: float = Field(300.0, gt=0)


class Bitrix24Settings(BaseModel):
    """A Bitrix24 portal reached through an incoming webhook."""

    # https://PORTAL/rest/USER_ID/CODE/ — the webhook code is a secret.
    webhook_url: SecretStr = SecretStr("http://127.0.0.1:8081/rest/1/devwebhookcode/")
    rate_per_s: float = Field(2.0, gt=0)
    burst: int = Field(50, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    product_iblock_id: int = 14
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


class OneCSettings(BaseModel):
    """The 1C HTTP service we call for egress to 1C."""

    base_url: str = "http://127.0.0.1:8082/trade/hs/mm/"
    username: str = "integration"
    password: SecretStr = SecretStr("")


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
    odata: ODataSettings = ODataSettings()
    commerceml: CommerceMLSettings = CommerceMLSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()

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
