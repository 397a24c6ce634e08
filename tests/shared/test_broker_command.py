"""`marugoto broker`: a real broker on a port, every topic created, a clean stop."""

import asyncio
import signal
import subprocess
import sys

from aiokafka.admin import AIOKafkaAdminClient

from shared.embedded_broker import free_port
from shared.topics import ALL_TOPICS
from tests.e2e.processes import alive, descendants


def test_broker_command_serves_all_topics_and_stops_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "broker", "--port", str(port), "--partitions", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}"
        children = descendants(process.pid)
        assert children, "the broker runs as a child process"
        partitions = asyncio.run(_partitions(f"127.0.0.1:{port}"))
        assert partitions == dict.fromkeys(ALL_TOPICS, 3)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not [pid for pid in children if alive(pid)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _partitions(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t in ALL_TOPICS]
        described = await admin.describe_topics(topics)
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()
