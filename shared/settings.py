"""Configuration read from the environment (prefix MARUGOTO_, plus the two standard URLs)."""

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("intake", "router", "conference", "metrics")

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

DEFAULT_PORTS = {"intake": 8001, "router": 8002, "conference": 8003, "metrics": 8004}


class Settings(BaseSettings):
    """Everything a Marugoto process may be configured with; read once, through `get_settings()`."""

    model_config = SettingsConfigDict(env_prefix="MARUGOTO_", extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "MARUGOTO_KAFKA_BOOTSTRAP_SERVERS"),
    )
    # Off for the embedded broker (BROKER.md: idempotent producers fail there); on for Apache Kafka.
    kafka_enable_idempotence: bool = False
    kafka_topic_partitions: int = Field(default=6, ge=1)
    # Prepended to every topic and consumer group: several environments can share one cluster.
    kafka_topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    kafka_replication_factor: int = Field(default=1, ge=1)
    # `min.insync.replicas` of the topics `marugoto kafka create-topics` creates; unset: the broker's default.
    kafka_min_insync_replicas: int | None = Field(default=None, ge=1)
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1000
    # Records a consumer applies in one transaction, and how long it waits for them when idle.
    kafka_consumer_batch_size: int = Field(default=500, ge=1)
    kafka_consumer_batch_timeout_ms: int = Field(default=100, ge=1)
    kafka_graceful_timeout_s: float = Field(default=15.0, gt=0)
    # Broker security (Apache Kafka in production; the embedded broker is plaintext on loopback only).
    # SSL and SASL_SSL verify the broker against the CA file (or the system CAs) and its host name; a
    # client certificate and key give mutual TLS. SASL authenticates with a user name and password.
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "MARUGOTO_DATABASE_URL")
    )
    # Connections each service process keeps open to PostgreSQL, and how long a connection attempt may take
    # (a readiness probe must answer even when the database host is unreachable).
    database_pool_size: int = Field(default=20, ge=1)
    database_connect_timeout_s: int = Field(default=5, ge=1)
    data_dir: Path = Path(".marugoto")

    host: str = "127.0.0.1"
    intake_port: int = DEFAULT_PORTS["intake"]
    router_port: int = DEFAULT_PORTS["router"]
    conference_port: int = DEFAULT_PORTS["conference"]
    metrics_port: int = DEFAULT_PORTS["metrics"]

    outbox_poll_interval_s: float = 0.5
    outbox_batch_size: int = Field(default=1000, ge=1)
    # The relay vacuums its outbox table (PostgreSQL) after this many published rows are deleted; 0: never,
    # leaving it to autovacuum (see shared/outbox.py for why a queue table needs it).
    outbox_vacuum_every: int = Field(default=10_000, ge=0)
    relay_enabled: bool = True
    # A service's consumer waits while this many events wait in its outbox (0: never waits); see
    # shared/outbox.py `OutboxGate`.
    outbox_backlog_limit: int = Field(default=5_000, ge=0)

    # Directory files (agencies and areas per municipality) the router loads; empty → the demo one.
    directory_files: list[Path] = Field(default_factory=list)

    # Agency credentials: intake signs access tokens with the private key; every service verifies them
    # with the public keys (several during a rotation).
    auth_private_key_file: Path | None = None
    auth_public_key_files: list[Path] = Field(default_factory=list)
    auth_token_ttl_s: int = Field(default=900, ge=60, le=86_400)

    # Personal details (intake only): Fernet keys, the first encrypts and all decrypt (rotation), and a
    # separate key for the blind index that finds repeat submissions without decrypting.
    personal_data_keys: list[SecretStr] = Field(default_factory=list)
    personal_index_key: SecretStr | None = None

    # The key store of per-case keys (shared/case_keys.py): a database of its own in production, with
    # short-lived backups; unset, the service database's `keystore` schema or `keystore.db` in the data dir.
    keystore_url: SecretStr | None = None
    # Exactly-once consumption (shared/inbox.py): how long the ids of applied events are kept to recognise
    # a copy that arrives at another offset (a relay or producer sending again after a failure), and how
    # often older ones are pruned. Redeliveries are recognised by position, however late.
    dedup_window_s: float = Field(default=7 * 86_400.0, gt=0)
    dedup_prune_interval_s: float = Field(default=600.0, gt=0)
    # Retention (intake): how often the job looks for cases past their municipality's retention period.
    retention_interval_s: float = Field(default=86_400.0, gt=0)

    # Referral deadlines are in business hours of the municipality's calendar; tests shorten the clock.
    router_business_hour_s: float = Field(default=3600.0, gt=0)
    router_wall_clock: bool = False  # count every hour, not only opening hours (tests, demos)
    router_timer_interval_s: float = Field(default=1.0, gt=0)

    # A service calling another (conference fetching the indicator snapshot from metrics) uses its own
    # client credentials, exchanged at intake like any agency's. The router's console page reaches intake
    # and conference through the router (the caller's own token, handed on).
    service_client_id: str | None = None
    service_client_secret: SecretStr | None = None
    intake_url: str | None = None
    conference_url: str | None = None
    metrics_url: str | None = None

    log_level: str = "INFO"
    # Objects allocated before Python's youngest-generation garbage collection (its default: 700); 0 keeps
    # Python's. A consumer batch allocates hundreds of thousands; at 700 the metrics service spent a fifth
    # of its time in the collector (bench/README.md).
    gc_young_threshold: int = Field(default=10_000, ge=0)

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Self:
        """Refuse half-configured broker security instead of silently connecting without it."""
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and (not self.kafka_sasl_username or self.kafka_sasl_password is None):
            raise ValueError(
                f"MARUGOTO_KAFKA_SECURITY_PROTOCOL={protocol} needs MARUGOTO_KAFKA_SASL_USERNAME and "
                "MARUGOTO_KAFKA_SASL_PASSWORD"
            )
        tls_files = {
            "MARUGOTO_KAFKA_SSL_CA_FILE": self.kafka_ssl_ca_file,
            "MARUGOTO_KAFKA_SSL_CERT_FILE": self.kafka_ssl_cert_file,
            "MARUGOTO_KAFKA_SSL_KEY_FILE": self.kafka_ssl_key_file,
        }
        if protocol not in {"SSL", "SASL_SSL"} and any(tls_files.values()):
            given = ", ".join(name for name, value in tls_files.items() if value)
            raise ValueError(f"{given} set, but MARUGOTO_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS")
        min_insync = self.kafka_min_insync_replicas
        if min_insync is not None and min_insync > self.kafka_replication_factor:
            raise ValueError("MARUGOTO_KAFKA_MIN_INSYNC_REPLICAS exceeds MARUGOTO_KAFKA_REPLICATION_FACTOR")
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("MARUGOTO_KAFKA_SSL_CERT_FILE and MARUGOTO_KAFKA_SSL_KEY_FILE go together")
        return self

    def port(self, service: str) -> int:
        """The HTTP port configured for a service."""
        return int(getattr(self, f"{service}_port"))

    def base_url(self, service: str) -> str:
        """The base URL a person or a client uses to reach a service (configured, or on this host)."""
        configured = getattr(self, f"{service}_url", None)
        return str(configured) if configured else f"http://{self.host}:{self.port(service)}"


def get_settings() -> Settings:
    """Read the settings from the environment now (never at import time)."""
    return Settings()
