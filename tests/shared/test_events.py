"""The CloudEvents envelope: what goes on the wire and what is refused."""

import json
from datetime import UTC, datetime

import pytest

from shared.consultation import ConsultationSummary
from shared.events import (
    ConsultationReceived,
    Envelope,
    InvalidEvent,
    RoutingDecided,
    decode,
    encode,
    new_event,
)


def received(case_id: str = "case-1") -> Envelope[ConsultationReceived]:
    consultation = ConsultationSummary.model_validate(
        {
            "area": "chiiki-01",
            "pathway": "self",
            "household": [{"relation": "self", "age_band": "65-74", "issues": ["poverty"]}],
        }
    )
    data = ConsultationReceived(
        case_id=case_id,
        consultation_id="c-1",
        submitted_by="agency-1",
        received_at=datetime(2026, 4, 1, tzinfo=UTC),
        consultation=consultation,
    )
    return new_event(data, source="/marugoto/intake", subject=case_id, municipality_code="242080")


def test_envelope_carries_every_cloudevents_attribute_as_json() -> None:
    wire = json.loads(encode(received()))
    assert wire["specversion"] == "1.0"
    assert wire["type"] == "jp.marugoto.consultation.received"
    assert wire["source"] == "/marugoto/intake"
    assert wire["subject"] == "case-1"
    assert wire["datacontenttype"] == "application/json"
    assert wire["municipalitycode"] == "242080"
    assert wire["schemaversion"] == 1
    assert wire["id"] and wire["time"].endswith("Z")
    assert wire["data"]["consultation"]["household"][0]["issues"] == ["poverty"]


def test_round_trip_gives_the_same_event() -> None:
    event = received()
    assert decode(encode(event), ConsultationReceived) == event


def test_each_event_gets_its_own_id() -> None:
    assert received().id != received().id


def test_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"routing\.decided"):
        decode(encode(received()), RoutingDecided)


def test_newer_schema_version_is_refused() -> None:
    wire = json.loads(encode(received()))
    wire["schemaversion"] = 2
    with pytest.raises(InvalidEvent, match="schema version 2"):
        decode(json.dumps(wire).encode(), ConsultationReceived)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{}", b'{"specversion": "0.3"}', json.dumps({"data": {}}).encode()],
)
def test_malformed_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidEvent):
        decode(raw, ConsultationReceived)


def test_bad_municipality_code_in_envelope_is_refused() -> None:
    wire = json.loads(encode(received()))
    wire["municipalitycode"] = "24208"
    with pytest.raises(InvalidEvent, match="municipalitycode"):
        decode(json.dumps(wire).encode(), ConsultationReceived)


def test_unknown_issue_tag_is_refused() -> None:
    wire = json.loads(encode(received()))
    wire["data"]["consultation"]["household"][0]["issues"] = ["astrology"]
    with pytest.raises(InvalidEvent, match="issues"):
        decode(json.dumps(wire).encode(), ConsultationReceived)
