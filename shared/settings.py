"""Configuration read from the environment (prefix MARUGOTO_, plus the two standard URLs)."""

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("intake", "router", "conference", "metrics")

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
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1000
    # Records a consumer applies in one transaction, and how long it waits for them when idle.
    kafka_consumer_batch_size: int = Field(default=500, ge=1)
    kafka_consumer_batch_timeout_ms: int = Field(default=100, ge=1)
    kafka_graceful_timeout_s: float = Field(default=15.0, gt=0)

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
    outbox_batch_size: int = 200
    relay_enabled: bool = True

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

    # Referral deadlines are in business hours of the municipality's calendar; tests shorten the clock.
    router_business_hour_s: float = Field(default=3600.0, gt=0)
    router_wall_clock: bool = False  # count every hour, not only opening hours (tests, demos)
    router_timer_interval_s: float = Field(default=1.0, gt=0)

    # A service calling another (conference fetching the indicator snapshot from metrics) uses its own
    # client credentials, exchanged at intake like any agency's.
    service_client_id: str | None = None
    service_client_secret: SecretStr | None = None
    intake_url: str | None = None
    metrics_url: str | None = None

    log_level: str = "INFO"

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
