"""Intake request throughput and end-to-end latency, against real service processes (`marugoto serve`)."""

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.auth import Scope, load_issuer
from shared.embedded_broker import free_port

ROOT = Path(__file__).resolve().parent.parent
PARTNER = "nabari-shakyo"

# 実施要領 table row 1 (8050), as in tests/e2e/test_spine.py: a parent needing care, a child in ひきこもり.
CONSULTATION_8050: dict[str, Any] = {
    "municipality_code": "242080",
    "area": "chiiki-07",
    "pathway": "family_or_community",
    "household": [
        {"relation": "self", "age": 83, "issues": ["long_term_care"]},
        {"relation": "child", "age": 52, "issues": ["hikikomori", "employment"]},
    ],
}


class Process:
    """One HTTP server in its own OS process, on a free port, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, *, ready_path: str) -> None:
        self.name, self.argv, self.env, self.log_path, self.ready_path = name, argv, env, log_path, ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def service(cls, name: str, env: dict[str, str], log_dir: Path) -> "Process":
        port = free_port()
        env = {**env, f"MARUGOTO_{name.upper()}_PORT": str(port)}
        proc = cls(
            name,
            [sys.executable, "-m", "services.cli", "serve", name],
            env,
            log_dir / f"{name}.log",
            ready_path="/readyz",
        )
        proc.port = port
        return proc

    @classmethod
    def bare(cls, env: dict[str, str], database_url: str, log_dir: Path) -> "Process":
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1", "--port", str(port)]
        proc = cls(
            "bare", argv, {**env, "BENCH_DATABASE_URL": database_url}, log_dir / "bare.log", ready_path="/healthz"
        )
        proc.port = port
        return proc

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> "Process":
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in __aexit__
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
                try:
                    if (await client.get(self.url + self.ready_path)).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in 60 s; see {self.log_path}")

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()


def partner_headers(private_key_file: str) -> dict[str, str]:
    """A bearer token of the demo partner agency, signed with this run's development key."""
    issuer = load_issuer(Path(private_key_file).read_text(), ttl_s=86_400)
    token, _ = issuer.issue(
        PARTNER, (Scope.submit, Scope.read_own), municipalities=[CONSULTATION_8050["municipality_code"]]
    )
    return {"Authorization": f"Bearer {token}"}


async def closed_loop(
    url: str, headers: dict[str, str], *, concurrency: int, duration_s: float, warmup_s: float
) -> dict[str, Any]:
    """`concurrency` clients POST the same consultation back to back; completions inside the window count."""
    window: dict[str, float] = {}
    ok, failed, latencies = 0, 0, []
    statuses: dict[int, int] = {}
    stop = False

    async def worker() -> None:
        nonlocal ok, failed
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            while not stop:
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/consultations", json=CONSULTATION_8050)
                    code = response.status_code
                except httpx.HTTPError:
                    code = 0
                done = time.perf_counter()
                if "start" in window and started >= window["start"] and done <= window.get("end", float("inf")):
                    statuses[code] = statuses.get(code, 0) + 1
                    if code == 202:
                        ok += 1
                        latencies.append(done - started)
                    else:
                        failed += 1

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup_s)
    window["start"] = time.perf_counter()
    await asyncio.sleep(duration_s)
    window["end"] = time.perf_counter()
    stop = True
    await asyncio.gather(*tasks)
    seconds = window["end"] - window["start"]
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "accepted": ok,
        "failed": failed,
        "statuses": {str(k): v for k, v in statuses.items()},
        "per_second": ok / seconds if seconds else None,
        "latency_p50_ms": _pct(latencies, 50) * 1000 if latencies else None,
    }


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(p) - 1] if p < 100 else ordered[-1]


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"p50_ms": _pct(values, 50) * 1000, "p99_ms": _pct(values, 99) * 1000, "max_ms": max(values) * 1000}


def _consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )


async def _wait_assigned(consumer: AIOKafkaConsumer) -> None:
    deadline = time.monotonic() + 30
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise RuntimeError("consumer never got partitions")
        await asyncio.sleep(0.01)


async def _offered(rate: float, count: int, send: Any) -> None:
    """Open loop: start `send(i)` every 1/rate seconds whatever the answers (no coordinated omission)."""
    start = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks)


async def end_to_end(
    intake_url: str,
    headers: dict[str, str],
    bootstrap: str,
    feed_topic: str,
    *,
    rate: float,
    duration_s: float,
    drain_s: float,
) -> dict[str, Any]:
    """POST at `rate` for `duration_s`; latency = first entry of the case on the agency feed − request start."""
    consumer = _consumer(bootstrap, feed_topic)
    await consumer.start()
    arrivals: dict[str, float] = {}

    async def read() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    case_id = json.loads(record.value)["data"]["case_id"]
                    arrivals.setdefault(case_id, now)

    reader = asyncio.create_task(read())
    sent: dict[str, float] = {}
    errors = 0
    try:
        await _wait_assigned(consumer)
        async with httpx.AsyncClient(base_url=intake_url, headers=headers, timeout=60) as client:

            async def send(_i: int) -> None:
                nonlocal errors
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/consultations", json=CONSULTATION_8050)
                except httpx.HTTPError:
                    errors += 1
                    return
                if response.status_code == 202:
                    sent[response.json()["case_id"]] = started
                else:
                    errors += 1

            # Warm-up: until the router has joined its group and routed a few cases.
            await _offered(5, 5, send)
            deadline = time.perf_counter() + 60
            while not all(c in arrivals for c in sent) and time.perf_counter() < deadline:
                await asyncio.sleep(0.1)
            sent.clear()
            await _offered(rate, int(rate * duration_s), send)
            deadline = time.perf_counter() + drain_s
            while not all(c in arrivals for c in sent) and time.perf_counter() < deadline:
                await asyncio.sleep(0.1)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
    latencies = [arrivals[c] - t for c, t in sent.items() if c in arrivals]
    return {
        "rate_per_s": rate,
        "requests": int(rate * duration_s),
        "accepted": len(sent),
        "errors": errors,
        "missing_on_feed": sum(1 for c in sent if c not in arrivals),
        **percentiles(latencies),
    }


async def broker_round_trip(bootstrap: str, topic: str, *, rate: float, duration_s: float) -> dict[str, Any]:
    """Baseline: a plain producer (acks=all) to a plain consumer on the same broker, at the same offered load."""
    consumer = _consumer(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    arrivals: dict[int, float] = {}
    sent: dict[int, float] = {}

    async def read() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    arrivals.setdefault(int(record.value), now)

    reader = asyncio.create_task(read())
    try:
        await _wait_assigned(consumer)

        async def send(i: int) -> None:
            sent[i] = time.perf_counter()
            await producer.send_and_wait(topic, str(i).encode(), key=uuid.uuid4().bytes)

        await _offered(rate, int(rate * duration_s), send)
        deadline = time.perf_counter() + 30
        while len(arrivals) < len(sent) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
        await consumer.stop()
    latencies = [arrivals[i] - t for i, t in sent.items() if i in arrivals]
    return {"rate_per_s": rate, "messages": len(sent), "missing": len(sent) - len(latencies), **percentiles(latencies)}
