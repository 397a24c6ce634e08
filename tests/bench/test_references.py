"""The benchmark's reference loops: what the event contract alone costs a consumer (bench/README.md)."""

import pytest

from bench.feed import ConsultationFactory, FanOut, decoded
from shared.events import ConsultationReceived, InvalidEvent, decode


def test_fan_out_produces_as_many_events_as_asked_in_whole_events() -> None:
    factory = ConsultationFactory()
    fan_out = FanOut(5.56)
    records = [factory.make(i)[1] for i in range(100)]

    produced = [fan_out(raw) for raw in records]

    assert sum(len(p) for p in produced) == 556
    assert {len(p) for p in produced} == {5, 6}
    for raw, payloads in zip(records, produced, strict=True):
        assert all(decode(p, ConsultationReceived) == decode(raw, ConsultationReceived) for p in payloads)


def test_the_references_validate_as_every_consumer_does() -> None:
    with pytest.raises(InvalidEvent):
        decoded(b'{"specversion": "1.0"}')
    with pytest.raises(InvalidEvent):
        FanOut(1.0)(b"not json")
