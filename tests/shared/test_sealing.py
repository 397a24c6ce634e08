"""Sealing of events' sensitive fields under per-case keys (crypto-shredding), and the key store."""

import json
import os
from datetime import UTC, datetime

import pytest

from shared.case_keys import CaseKeys, keystore_engine
from shared.consultation import ConsultationSummary, MemberSummary
from shared.events import (
    ConsultationReceived,
    EngagedAgency,
    InvalidEvent,
    RoutingDecided,
    decode,
    decode_object,
    encode,
    new_event,
)
from shared.sealing import seal, seal_batch, unseal
from shared.vocabulary import IssueTag, Pathway, Relation

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def _consultation(case_id: str = "case-1") -> bytes:
    data = ConsultationReceived(
        case_id=case_id,
        consultation_id="c-1",
        submitted_by="nabari-shakyo",
        received_at=NOW,
        consultation=ConsultationSummary(
            area="nabari-1",
            pathway=Pathway.family_or_community,
            household=[
                MemberSummary(relation=Relation.self_, issues=[IssueTag.domestic_violence], age_band="40-49"),
                MemberSummary(relation=Relation.child, issues=[IssueTag.education], age_band="10-14"),
            ],
        ),
    )
    return encode(new_event(data, source="intake", subject=case_id, municipality_code="242080"))


def test_sealed_event_keeps_counted_fields_in_clear_and_opens_with_its_key() -> None:
    key = os.urandom(32)
    raw = _consultation()
    [sealed] = seal_batch([raw.decode()], [ConsultationReceived.topic], lambda cases: {"case-1": key})
    assert "nabari-1" not in sealed and "domestic_violence" not in sealed and "40-49" not in sealed

    without_key = decode(sealed.encode(), ConsultationReceived)
    assert without_key.sealedkey == "case-1" and without_key.sealed
    assert without_key.data.consultation.area == "" and without_key.data.consultation.household == []
    assert without_key.data.consultation.pathway is Pathway.family_or_community  # what metrics counts stays readable
    assert without_key.data.received_at == NOW

    opened = decode_object(unseal(json.loads(sealed), key), ConsultationReceived)
    assert opened.data == decode(raw, ConsultationReceived).data
    assert opened.sealed is None


def test_a_sealed_part_does_not_open_with_another_key_nor_on_another_event() -> None:
    key = os.urandom(32)
    [sealed] = seal_batch([_consultation().decode()], [ConsultationReceived.topic], lambda cases: {"case-1": key})
    with pytest.raises(InvalidEvent):
        unseal(json.loads(sealed), os.urandom(32))
    moved = json.loads(sealed)
    moved["id"] = "another-event"
    with pytest.raises(InvalidEvent):
        unseal(moved, key)


def test_an_erased_case_is_published_without_its_sensitive_fields() -> None:
    [out] = seal_batch([_consultation().decode()], [ConsultationReceived.topic], lambda cases: {"case-1": None})
    envelope = json.loads(out)
    assert envelope["sealed"] is None and "nabari-1" not in out and "domestic_violence" not in out
    assert envelope["data"]["consultation"]["household"] == []


def test_list_items_are_sealed_field_by_field() -> None:
    data = RoutingDecided(
        case_id="case-2",
        decision_id="d-1",
        tier=2,
        patterns=["P1"],
        lead="nabari-houkatsu",
        engaged=[
            EngagedAgency(agency_id="a", agency_type="t", rule_id="r", legal_basis="b", reason="dv seen", tags=["dv"]),
            EngagedAgency(agency_id="b", agency_type="t", rule_id="r", legal_basis="b"),
        ],
        resource_gaps=[],
        directory_version="v1",
        urgency="routine",
        decided_at=NOW,
    )
    envelope = json.loads(encode(new_event(data, source="router", subject="case-2", municipality_code="242080")))
    key = os.urandom(32)
    sealed = seal(envelope, key)
    assert [e["tags"] for e in sealed["data"]["engaged"]] == [[], []]
    assert [e["agency_id"] for e in sealed["data"]["engaged"]] == ["a", "b"]
    assert sealed["data"]["patterns"] == ["P1"]
    opened = decode_object(unseal(sealed, key), RoutingDecided)
    assert opened.data == data


def test_events_with_nothing_sensitive_are_not_touched() -> None:
    payload = '{"type":"x"}'
    assert seal_batch([payload], ["marugoto.referral.status_changed"], lambda cases: {}) == [payload]


def test_key_store_makes_reads_and_erases_keys(settings_tmp) -> None:  # type: ignore[no-untyped-def]
    keys = CaseKeys(keystore_engine(settings_tmp))
    assert keys.keys_for({"k-1"}, create=False) == {}
    made = keys.keys_for({"k-1", "k-2"}, create=True)
    assert set(made) == {"k-1", "k-2"} and all(len(k or b"") == 32 for k in made.values())
    again = CaseKeys(keystore_engine(settings_tmp)).keys_for({"k-1"}, create=True)
    assert again["k-1"] == made["k-1"]  # made once, the same key for every reader
    keys.erase("k-1")
    fresh = CaseKeys(keystore_engine(settings_tmp))
    assert fresh.keys_for({"k-1"}, create=True) == {"k-1": None}  # a tombstone is never given a new key
    assert fresh.state("k-1") == "erased" and fresh.state("k-2") == "live" and fresh.state("k-3") == "unknown"


@pytest.fixture
def settings_tmp(tmp_path):  # type: ignore[no-untyped-def]
    from shared.settings import Settings

    return Settings(data_dir=tmp_path, database_url=None, keystore_url=None)
