"""Pre-produced `ConsultationReceived` events, built like tests/router/test_directory_api.py::publish_consultation."""

import asyncio
import time
from datetime import UTC, datetime

import yaml
from aiokafka import AIOKafkaProducer

from shared.consultation import ConsultationSummary
from shared.directory import demo_directory_path
from shared.events import ConsultationReceived, Envelope, decode, encode, new_event
from shared.ids import new_id

MUNICIPALITY = "242080"
# A few households that take different routes (tier 1 and tier 2, one or several partner types).
ISSUE_SETS: tuple[tuple[str, ...], ...] = (
    ("legal", "poverty"),
    ("long_term_care",),
    ("poverty",),
    ("hikikomori", "employment"),
    ("childcare", "housing"),
)
_CASE = "00000000-0000-4000-8000-00000000c0de"
_ID = "00000000-0000-4000-8000-0000000000e1"


def demo_areas() -> list[str]:
    """The elementary-school-district areas of the demo municipality (242080) in shared/demo_directory.yaml."""
    data = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    areas = data["municipality"]["areas"]
    return [a["id"] for a in areas if a.get("kind") == "elementary_school_district"] or [a["id"] for a in areas]


def _template(area: str, issues: tuple[str, ...]) -> bytes:
    summary = ConsultationSummary.model_validate(
        {"area": area, "pathway": "self", "household": [{"relation": "self", "issues": list(issues)}]}
    )
    data = ConsultationReceived(
        case_id=_CASE, consultation_id=_CASE, submitted_by="bench", received_at=datetime.now(UTC), consultation=summary
    )
    event = new_event(data, source="/bench", subject=_CASE, municipality_code=MUNICIPALITY)
    raw = encode(event.model_copy(update={"id": _ID}))
    return raw


class ConsultationFactory:
    """Wire bytes of valid, distinct ConsultationReceived events (fresh case and event ids each)."""

    def __init__(self) -> None:
        self.templates = [_template(a, s) for a in demo_areas() for s in ISSUE_SETS]

    def make(self, i: int) -> tuple[bytes, bytes]:
        case_id = new_id()
        raw = self.templates[i % len(self.templates)]
        raw = raw.replace(_CASE.encode(), case_id.encode()).replace(_ID.encode(), new_id().encode())
        return case_id.encode(), raw


def decoded(raw: bytes) -> Envelope[ConsultationReceived]:
    """A record as every consumer of the event contract reads it first: parsed and validated (`decode`)."""
    return decode(raw, ConsultationReceived)


class FanOut:
    """A record decoded as every consumer does (`decoded`), then encoded `per_record` times on average, as
    a producer encodes each event it sends: what a router must do at the least for each consultation
    that causes `per_record` events, without deciding anything or storing anything."""

    def __init__(self, per_record: float) -> None:
        self.per_record = per_record
        self.seen = 0

    def __call__(self, raw: bytes) -> list[bytes]:
        envelope = decoded(raw)
        self.seen += 1
        # Whole events only, as many in all as per_record × records: 5.6 per record is 6, 5, 6, 6, 5, …
        count = round(self.seen * self.per_record) - round((self.seen - 1) * self.per_record)
        return [encode(envelope) for _ in range(count)]


async def produce_consultations(bootstrap: str, topic: str, n: int) -> float:
    """Produce `n` events to `topic` (keyed by case id); returns the seconds it took."""
    factory = ConsultationFactory()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        chunk = 5000
        for start in range(0, n, chunk):
            futures = []
            for i in range(start, min(n, start + chunk)):
                key, value = factory.make(i)
                futures.append(await producer.send(topic, value, key=key))
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started
