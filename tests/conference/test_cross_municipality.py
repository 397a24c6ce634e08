"""Two municipalities on one deployment, sharing a prefecture-wide agency: its time is booked once across
both, however the bookings interleave; each municipality's rooms are its own, whatever they are called."""

import copy
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

import services.conference.app  # noqa: F401 - registers the conference tables
from services.conference import slots
from services.conference.case_meetings import apply_routing_decided
from services.conference.config import MunicipalityConference, load_configs
from services.conference.meetings import list_meetings
from services.conference.models import Meeting
from shared import db
from shared.directory import demo_directory_path
from shared.events import Envelope, RoutingDecided, new_event
from shared.settings import Settings
from tests.conference.test_meetings import decided

NABARI, IGA = "242080", "242160"
LEADS = {NABARI: "nabari-houkatsu", IGA: "iga-houkatsu"}
SHARED = "mie-dv"  # 三重県配偶者暴力相談支援センター, scope prefecture: in both directories under one id


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = db.make_engine(settings, "conference")
    db.upgrade(engine, "conference")
    yield engine
    engine.dispose()


def two_municipalities(tmp_path: Path, **conference: object) -> dict[str, MunicipalityConference]:
    """名張市 (the demo directory) and 伊賀市: its own 地域包括支援センター and the prefecture's agencies."""
    nabari = yaml.safe_load(demo_directory_path().read_text(encoding="utf-8"))
    nabari["conference"] = conference
    iga = copy.deepcopy(nabari)
    iga["municipality"].update(code=IGA, name="伊賀市", lead=LEADS[IGA], general_window=LEADS[IGA])
    houkatsu = next(a for a in nabari["agencies"] if a["id"] == LEADS[NABARI])
    iga["agencies"] = [
        {**houkatsu, "id": LEADS[IGA], "name": "伊賀市地域包括支援センター"},
        *(a for a in nabari["agencies"] if a["scope"] == "prefecture"),
    ]
    paths = []
    for data in (nabari, iga):
        path = tmp_path / f"directory-{data['municipality']['code']}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        paths.append(path)
    return load_configs(paths)


def routed(code: str, agencies: list[str], lead: str | None = None) -> Envelope[RoutingDecided]:
    """A tier-2 case of `code` routed to `agencies`, led by the municipality's own 地域包括支援センター."""
    case_id = str(uuid.uuid4())
    data = decided(case_id, agencies).model_copy(update={"lead": lead or LEADS[code]})
    return new_event(data, source="/t", subject=case_id, municipality_code=code)


def meeting_of(engine: Engine, event: Envelope[Any]) -> Meeting:
    with db.transaction(engine) as session:
        [meeting] = list_meetings(session, case_id=event.data.case_id)
    assert meeting.starts_at is not None and meeting.ends_at is not None, meeting.blockers
    return meeting


def test_an_agency_serves_every_municipality_whose_directory_lists_it(tmp_path: Path) -> None:
    configs = two_municipalities(tmp_path)
    assert configs[NABARI].municipalities_of([LEADS[NABARI], "hoken-07"]) == [NABARI]
    assert configs[NABARI].municipalities_of([LEADS[NABARI], SHARED]) == [NABARI, IGA]
    assert configs[IGA].municipalities_of([LEADS[IGA]]) == [IGA]
    assert configs[IGA].municipalities_of(["not-in-any-directory"]) == [IGA]


def test_a_prefecture_wide_agency_booked_by_two_municipalities_at_once_is_booked_once(
    engine: Engine, tmp_path: Path
) -> None:
    """名張市 finds a slot for mie-dv and has not committed yet when 伊賀市 looks for one: 伊賀市 waits,
    then takes the next free slot, instead of reading mie-dv as free and taking the same hour."""
    configs = two_municipalities(tmp_path)
    first, second = routed(NABARI, [SHARED]), routed(IGA, [SHARED])
    first_booked, second_started = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def book_first() -> None:
        try:
            with db.transaction(engine) as session:
                apply_routing_decided(session, first, configs)
                first_booked.set()
                # Hold the transaction open while 伊賀市 looks for its slot.
                second_started.wait(timeout=10)
                threading.Event().wait(0.5)
        except BaseException as error:  # pragma: no cover - reported by the assertion below
            errors.append(error)
            first_booked.set()

    def book_second() -> None:
        try:
            first_booked.wait(timeout=10)
            second_started.set()
            with db.transaction(engine) as session:
                apply_routing_decided(session, second, configs)
        except BaseException as error:  # pragma: no cover - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=book_first), threading.Thread(target=book_second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors

    nabari, iga = meeting_of(engine, first), meeting_of(engine, second)
    assert SHARED in nabari.participants and SHARED in iga.participants
    assert nabari.ends_at is not None and iga.starts_at is not None
    assert nabari.ends_at <= iga.starts_at, f"{SHARED} is double-booked at {iga.starts_at.isoformat()}"
    # The next free slot: where 伊賀市's meeting goes with mie-dv taken by 名張市's, and nowhere later.
    assert nabari.starts_at is not None and iga.deadline is not None
    expected = slots.find_slot(
        slots.SlotRequest(
            meeting_id="expected",
            participants=iga.participants,
            duration=timedelta(minutes=configs[IGA].settings.meeting_minutes),
            earliest=nabari.starts_at,
            deadline=iga.deadline,
        ),
        configs[IGA].hours,
        [slots.Booking(participant=SHARED, start=nabari.starts_at, end=nabari.ends_at)],
    )
    assert iga.starts_at == expected.start


def test_each_municipality_has_its_own_room_1(engine: Engine, tmp_path: Path) -> None:
    """Both municipalities call their one room "room-1": meetings with no one in common take both at the
    same hour, while a second meeting of the same municipality never takes its room twice."""
    configs = two_municipalities(tmp_path, rooms=[{"id": "room-1", "capacity": 10}])
    nabari_event = routed(NABARI, ["hoken-07"])
    iga_event = routed(IGA, ["mie-saposute"])
    # No one in common with the first either, so only the room stands between them.
    nabari_again = routed(NABARI, ["hoken-08"], lead="nabari-jiritsu")
    for event in (nabari_event, iga_event):
        with db.transaction(engine) as session:
            apply_routing_decided(session, event, configs)
    nabari, iga = meeting_of(engine, nabari_event), meeting_of(engine, iga_event)
    assert (nabari.room_id, iga.room_id) == ("room-1", "room-1")
    assert nabari.starts_at == iga.starts_at, "伊賀市's room-1 is not 名張市's"

    with db.transaction(engine) as session:
        apply_routing_decided(session, nabari_again, configs)
    again = meeting_of(engine, nabari_again)
    assert again.room_id == "room-1"
    assert nabari.ends_at is not None and again.starts_at is not None
    assert again.starts_at >= nabari.ends_at, "名張市's room-1 is booked once at a time"
