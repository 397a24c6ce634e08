"""`marugoto kafka create-topics`: every topic and its .dlq on an external broker, with partitions and retention."""

import asyncio
import os
import subprocess
import sys
import uuid

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.kafka import topic_configs
from shared.topics import AGENCY_FEED, ALL_TOPICS, CONSULTATION_RECEIVED, dead_letter_topic


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "kafka", "create-topics", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_create_topics_against_a_running_broker(kafka_bootstrap: str) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}."
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARUGOTO_")}
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, MARUGOTO_KAFKA_TOPIC_PREFIX=prefix)
    first = _run(env, "--partitions", "3")
    assert first.returncode == 0, first.stderr
    assert f"{len(ALL_TOPICS)} topic(s) created, 0 already there (partitions 3, replication factor 1)" in first.stdout
    described, configs = asyncio.run(_describe(kafka_bootstrap, [prefix + t for t in ALL_TOPICS]))
    assert described == {prefix + t: 3 for t in ALL_TOPICS}
    for topic in (CONSULTATION_RECEIVED, AGENCY_FEED, dead_letter_topic(CONSULTATION_RECEIVED)):
        expected = topic_configs(topic)
        assert {k: configs[prefix + topic][k] for k in expected} == expected, topic
    again = _run(env)
    assert again.returncode == 0, again.stderr
    assert f"0 topic(s) created, {len(ALL_TOPICS)} already there" in again.stdout


def test_create_topics_needs_a_bootstrap_address() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARUGOTO_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    result = _run(env)
    assert result.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in result.stderr


async def _describe(bootstrap: str, topics: list[str]) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(topics)}
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        configs: dict[str, dict[str, str]] = {}
        for response in responses:
            for resource in response.resources:
                _error, _message, _type, name, entries = resource[:5]
                configs[name] = {entry[0]: entry[1] for entry in entries}
        return partitions, configs
    finally:
        await admin.close()
