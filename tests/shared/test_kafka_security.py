"""Broker security: the settings give every Kafka client (FastStream's, the admin, dlq/rebuild) one configuration.

No TLS broker is needed: the tests read the options the clients are built with.
"""

import datetime
import functools
import ssl
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from services.cli import main
from shared import kafka
from shared.embedded_broker import EmbeddedBroker
from shared.kafka import broker_security, client_options, ensure_configured_topics, make_broker, topic_configs
from shared.settings import Settings
from shared.topics import AGENCY_FEED, ALL_TOPICS, CONSULTATION_RECEIVED, dead_letter_topic

BOOTSTRAP = "kafka-1.example:9093,kafka-2.example:9093"
SECURITY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "ssl_context")


def _settings(**values: Any) -> Settings:
    return Settings(KAFKA_BOOTSTRAP_SERVERS=BOOTSTRAP, **values)


def _security(options: dict[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in SECURITY_KEYS if k in options}


def _broker_options(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the FastStream broker hands its producer/admin, and its consumers."""
    broker = make_broker(settings, client_id="test")
    builder = broker.config.broker_config.builder
    assert isinstance(builder, functools.partial), "consumers are built by a partial holding their options"
    return _security(broker._connection_kwargs), _security(builder.keywords)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a client certificate signed by it, as PEM files (the key encrypted with a password)."""
    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "marugoto-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "marugoto-router")]))
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        "ca": directory / "ca.crt",
        "cert": directory / "user.crt",
        "key": directory / "user.key",
        "plain_key": directory / "user-plain.key",
    }
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(client.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-password"),
        )
    )
    files["plain_key"].write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


def test_default_is_plaintext_everywhere() -> None:
    settings = _settings()
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert broker_security(settings) is None
    assert client_options(settings) == {"bootstrap_servers": BOOTSTRAP}
    producer, consumer = _broker_options(settings)
    # FastStream passes no security options then, and aiokafka's default is PLAINTEXT.
    assert producer == consumer == {}


def test_sasl_ssl_scram_512_with_a_private_ca(pki: dict[str, Path]) -> None:
    settings = _settings(
        kafka_security_protocol="sasl_ssl",  # case does not matter
        kafka_sasl_username="marugoto-router",
        kafka_sasl_password="s3cret",
        kafka_ssl_ca_file=pki["ca"],
    )
    options = client_options(settings)
    assert options["bootstrap_servers"] == BOOTSTRAP
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "marugoto-router"
    assert options["sasl_plain_password"] == "s3cret"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # A certificate's subject: relative distinguished names, each a tuple of (attribute, value) pairs.
    subjects = [cast(tuple[tuple[tuple[str, str], ...], ...], ca["subject"]) for ca in context.get_ca_certs()]
    assert any(dict(rdn[0] for rdn in subject).get("commonName") == "marugoto-test-ca" for subject in subjects), (
        "the configured CA is the one trusted"
    )
    producer, consumer = _broker_options(settings)
    for built in (producer, consumer):
        assert {k: v for k, v in built.items() if k != "ssl_context"} == {
            k: v for k, v in _security(options).items() if k != "ssl_context"
        }
        assert isinstance(built["ssl_context"], ssl.SSLContext)
    assert "s3cret" not in repr(settings), "the password is a SecretStr"


@pytest.mark.parametrize(
    ("protocol", "mechanism", "expected"),
    [
        ("SASL_PLAINTEXT", "SCRAM-SHA-256", ("SASL_PLAINTEXT", "SCRAM-SHA-256")),
        ("SASL_SSL", "PLAIN", ("SASL_SSL", "PLAIN")),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512", ("SASL_PLAINTEXT", "SCRAM-SHA-512")),
    ],
)
def test_sasl_mechanisms(protocol: str, mechanism: str, expected: tuple[str, str]) -> None:
    settings = _settings(
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )
    options = client_options(settings)
    assert (options["security_protocol"], options["sasl_mechanism"]) == expected
    assert (options["ssl_context"] is None) == (protocol == "SASL_PLAINTEXT")


def test_mutual_tls_with_client_certificate(pki: dict[str, Path]) -> None:
    settings = _settings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=pki["ca"],
        kafka_ssl_cert_file=pki["cert"],
        kafka_ssl_key_file=pki["key"],
        kafka_ssl_key_password="key-password",
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in options
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    wrong = settings.model_copy(update={"kafka_ssl_key_password": None})
    with pytest.raises(ValueError, match="MARUGOTO_KAFKA_SSL_KEY_PASSWORD"):
        client_options(wrong)  # the encrypted key cannot be loaded without its password, and nothing prompts
    plain = wrong.model_copy(update={"kafka_ssl_key_file": pki["plain_key"]})
    assert isinstance(client_options(plain)["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize(
    "values",
    [
        {"kafka_security_protocol": "SASL_SSL"},
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"},
        {"kafka_security_protocol": "PLAINTEXT", "kafka_ssl_ca_file": "/etc/ca.crt"},
        {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/etc/user.crt"},
        {"kafka_security_protocol": "TLS"},
        {"kafka_sasl_mechanism": "GSSAPI"},
        {"kafka_replication_factor": 1, "kafka_min_insync_replicas": 2},
    ],
)
def test_incomplete_or_contradictory_security_is_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _settings(**values)


def test_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path]) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", BOOTSTRAP)
    monkeypatch.setenv("MARUGOTO_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MARUGOTO_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("MARUGOTO_KAFKA_SASL_USERNAME", "marugoto-metrics")
    monkeypatch.setenv("MARUGOTO_KAFKA_SASL_PASSWORD", "from-a-secret")
    monkeypatch.setenv("MARUGOTO_KAFKA_SSL_CA_FILE", str(pki["ca"]))
    settings = Settings()
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == "from-a-secret"
    assert client_options(settings)["sasl_plain_username"] == "marugoto-metrics"


async def test_topic_creation_uses_the_same_security_and_the_topic_configs(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path]
) -> None:
    made: list[dict[str, Any]] = []
    created: list[Any] = []

    class FakeAdmin:
        def __init__(self, **options: Any) -> None:
            made.append(options)

        async def start(self) -> None:
            pass

        async def list_topics(self) -> list[str]:
            return ["prod." + CONSULTATION_RECEIVED]

        async def create_topics(self, topics: list[Any]) -> None:
            created.extend(topics)

        async def close(self) -> None:
            pass

    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", FakeAdmin)
    settings = _settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="marugoto-admin",
        kafka_sasl_password="p",
        kafka_ssl_ca_file=pki["ca"],
        kafka_topic_prefix="prod.",
        kafka_topic_partitions=12,
        kafka_replication_factor=3,
        kafka_min_insync_replicas=2,
    )
    names = await ensure_configured_topics(settings)
    [options] = made
    assert options["bootstrap_servers"] == BOOTSTRAP
    assert _security(options) | {"ssl_context": None} == _security(client_options(settings)) | {"ssl_context": None}
    assert names == ["prod." + t for t in ALL_TOPICS if t != CONSULTATION_RECEIVED]
    assert all(t.num_partitions == 12 and t.replication_factor == 3 for t in created)
    configs = {t.name.removeprefix("prod."): t.topic_configs for t in created}
    assert configs[AGENCY_FEED] == topic_configs(AGENCY_FEED, min_insync_replicas=2)
    assert configs[AGENCY_FEED]["min.insync.replicas"] == "2"
    assert configs[dead_letter_topic(AGENCY_FEED)]["retention.ms"] == str(90 * 86_400_000)
    assert {c["cleanup.policy"] for c in configs.values()} == {"delete"}


def test_embedded_broker_is_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedBroker(host="0.0.0.0")
    assert EmbeddedBroker(host="127.0.0.1").host == "127.0.0.1"


def test_up_refuses_broker_security_for_the_embedded_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MARUGOTO_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("MARUGOTO_KAFKA_SECURITY_PROTOCOL", "SSL")
    assert main(["up", "--demo", "0"]) == 2
    assert "plaintext on loopback only" in capsys.readouterr().err
