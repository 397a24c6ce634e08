"""The CloudEvents envelope: what goes on the wire and what is refused."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

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

ROOT = Path(__file__).resolve().parents[2]


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


_REBUILDS = """
import gc, json, sys
from pydantic._internal._model_construction import ModelMetaclass
from shared.events import ConsultationReceived, decode, encode, new_event

made = []
real_new = ModelMetaclass.__new__
def counting_new(mcs, name, *args, **kwargs):
    made.append(name)
    return real_new(mcs, name, *args, **kwargs)
ModelMetaclass.__new__ = counting_new
data = ConsultationReceived.model_validate_json(sys.argv[1])
for _ in range(5):
    wire = encode(new_event(data, source="/test", subject=data.case_id, municipality_code="242080"))
    decode(wire, ConsultationReceived)
    gc.collect()
print(json.dumps(made))
"""


def test_the_envelope_class_of_an_event_type_is_made_once_not_again_after_a_collection() -> None:
    # In a fresh interpreter: here a test's annotation (`-> Envelope[ConsultationReceived]`) keeps the
    # class alive, as nothing does in a service, where pydantic's weak cache let the collector take it.
    data = received().data.model_dump_json()
    done = subprocess.run(
        [sys.executable, "-c", _REBUILDS, data], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    )
    assert json.loads(done.stdout) == ["Envelope[ConsultationReceived]"]
