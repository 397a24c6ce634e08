"""The case-meeting slot finder: hours, holidays, bookings, deadlines, rooms, batches and a brute-force oracle."""

import random
import time as clock
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.conference.slots import (
    DEFAULT_HOURS,
    Booking,
    Room,
    SlotRequest,
    SlotResult,
    WeeklyHours,
    find_slot,
    parse_hours,
    schedule_many,
)
from shared.calendar import JST, is_closed_day

LUNCH_BREAK = "mon-fri 08:30-12:00,13:00-17:15"


def at(day: str, hhmm: str = "00:00") -> datetime:
    """A JST moment from ISO date and HH:MM."""
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=JST)


def meeting(
    *participants: str,
    earliest: datetime,
    deadline: datetime,
    minutes: int = 60,
    meeting_id: str = "m1",
    room_needed: bool = False,
) -> SlotRequest:
    """A request with the usual 15-minute step."""
    return SlotRequest(
        meeting_id=meeting_id,
        participants=participants,
        duration=timedelta(minutes=minutes),
        earliest=earliest,
        deadline=deadline,
        room_needed=room_needed,
    )


def hours_of(**texts: str) -> dict[str, WeeklyHours]:
    """Weekly hours per agency, parsed from the configuration format."""
    return {agency: parse_hours(text, DEFAULT_HOURS) for agency, text in texts.items()}


def open_day_after(day: date, count: int) -> date:
    """The `count`-th open day after `day`."""
    while count > 0:
        day += timedelta(days=1)
        if not is_closed_day(day):
            count -= 1
    return day


def fits_hours(hours: WeeklyHours, start: datetime, end: datetime) -> bool:
    """The meeting lies inside one opening interval of that weekday (JST)."""
    start, end = start.astimezone(JST), end.astimezone(JST)
    day = start.date()
    return any(
        datetime.combine(day, s, tzinfo=JST) <= start and end <= datetime.combine(day, e, tzinfo=JST)
        for s, e in hours.days[day.weekday()]
    )


def overlaps(bookings: Sequence[Booking], key: str, start: datetime, end: datetime) -> bool:
    """Some booking of `key` overlaps [start, end)."""
    return any(b.participant == key and b.start < end and start < b.end for b in bookings)


# Holidays and the year-end closure


@pytest.mark.parametrize(
    ("agency_hours", "expected"),
    [("mon-fri 08:30-17:15", "08:30"), ("mon-sun 09:00-20:00", "09:00")],
)
def test_a_national_holiday_is_never_a_meeting_day(agency_hours: str, expected: str) -> None:
    # 2026-11-23 is a Monday and 勤労感謝の日; the weekly hours of the second case even claim Mondays.
    request = meeting("a", "b", earliest=at("2026-11-23", "08:00"), deadline=at("2026-11-27", "18:00"))
    result = find_slot(request, hours_of(a=agency_hours, b="mon-sun 08:00-20:00"), [])
    assert result.start == at("2026-11-24", expected)
    assert result.within_deadline and not result.needs_attention and result.blockers == []


def test_weekend_hours_do_not_open_a_saturday() -> None:
    request = meeting("a", earliest=at("2026-11-28", "09:00"), deadline=at("2026-12-04", "18:00"))
    result = find_slot(request, hours_of(a="mon-fri 10:00-12:00; sat-sun 09:00-12:00"), [])
    assert result.start == at("2026-11-30", "10:00")


def test_the_year_end_closure_is_skipped() -> None:
    # 16:45 on 12/28 leaves no room for an hour; 12/29–1/3 are closed.
    request = meeting("a", "b", earliest=at("2026-12-28", "16:45"), deadline=at("2027-01-08", "18:00"))
    result = find_slot(request, {}, [])
    assert (result.start, result.end) == (at("2027-01-04", "08:30"), at("2027-01-04", "09:30"))


# Business hours


def test_hours_strings_are_parsed() -> None:
    assert parse_hours("mon-fri 08:30-17:15", WeeklyHours()) == DEFAULT_HOURS
    assert parse_hours("  MON - FRI 8:30 - 17:15 ", WeeklyHours()) == DEFAULT_HOURS
    split = parse_hours("mon-fri 08:30-12:00,13:00-17:15; sat 09:00-12:00", WeeklyHours())
    assert split.days[4] == ((time(8, 30), time(12, 0)), (time(13, 0), time(17, 15)))
    assert split.days[5] == ((time(9, 0), time(12, 0)),)
    assert split.days[6] == ()
    tuesday = parse_hours("tue 13:00-17:00", DEFAULT_HOURS)
    assert tuesday.days == ((), ((time(13, 0), time(17, 0)),), (), (), (), (), ())
    assert parse_hours("mon,wed 09:00-12:00", WeeklyHours()).days[1:3] == ((), ((time(9, 0), time(12, 0)),))
    # Touching intervals are one stretch, so a meeting may run across the seam.
    assert parse_hours("mon 08:30-12:00,12:00-17:15", WeeklyHours()).days[0] == ((time(8, 30), time(17, 15)),)


def test_missing_hours_take_the_default() -> None:
    tuesdays = parse_hours("tue 13:00-17:00", DEFAULT_HOURS)
    assert parse_hours(None, tuesdays) is tuesdays


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ;  ",
        "mon-fri",
        "08:30-17:15",
        "mon-fry 08:30-17:15",
        "fri-mon 09:00-12:00",
        "mon-fri 17:15-08:30",
        "mon-fri 25:00-26:00",
        "mon-fri 08:30-17:15 and more",
        "mon-fri 8-17",
        "monday 08:30-17:15",
    ],
)
def test_malformed_hours_are_rejected_with_the_offending_text(text: str) -> None:
    with pytest.raises(ValueError, match="opening hours"):
        parse_hours(text, DEFAULT_HOURS)


@pytest.mark.parametrize(
    ("booked_until", "expected"),
    [(None, "2026-11-30T13:00"), ("15:30", "2026-11-30T15:30"), ("15:45", "2026-12-01T13:00")],
)
def test_afternoon_hours_bound_a_ninety_minute_meeting(booked_until: str | None, expected: str) -> None:
    bookings = [] if booked_until is None else [Booking("b", at("2026-11-30", "13:00"), at("2026-11-30", booked_until))]
    request = meeting("a", "b", earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"), minutes=90)
    result = find_slot(request, hours_of(b="mon-fri 13:00-17:00"), bookings)
    assert result.start == datetime.fromisoformat(expected).replace(tzinfo=JST)
    assert result.end is not None and result.end.time() <= time(17, 0)


@pytest.mark.parametrize(("minutes", "expected"), [(60, "13:00"), (30, "11:30")])
def test_the_lunch_break_is_respected(minutes: int, expected: str) -> None:
    request = meeting("a", earliest=at("2026-11-30", "11:30"), deadline=at("2026-12-04", "18:00"), minutes=minutes)
    result = find_slot(request, hours_of(a=LUNCH_BREAK), [])
    assert result.start == at("2026-11-30", expected)


def test_an_agency_free_only_on_tuesday_afternoons_gets_tuesday_afternoon() -> None:
    request = meeting("a", "b", "c", earliest=at("2026-12-02", "09:00"), deadline=at("2026-12-11", "18:00"))
    result = find_slot(request, hours_of(c="tue 13:00-17:00"), [])
    assert result.start == at("2026-12-08", "13:00")
    assert result.within_deadline and not result.needs_attention


def test_earliest_is_rounded_up_to_the_step() -> None:
    request = meeting("a", earliest=at("2026-11-30", "10:07"), deadline=at("2026-12-04", "18:00"))
    assert find_slot(request, {}, []).start == at("2026-11-30", "10:15")


# Bookings


def test_existing_bookings_push_the_slot_later() -> None:
    bookings = [
        # Given in UTC: 08:30–10:00 JST.
        Booking("a", datetime(2026, 11, 29, 23, 30, tzinfo=UTC), datetime(2026, 11, 30, 1, 0, tzinfo=UTC)),
        Booking("b", at("2026-11-30", "10:00"), at("2026-11-30", "10:30")),
        Booking("z", at("2026-11-30", "08:00"), at("2026-11-30", "18:00")),
    ]
    request = meeting("a", "b", earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"))
    assert find_slot(request, {}, bookings).start == at("2026-11-30", "10:30")


def test_a_meeting_may_end_exactly_when_a_booking_starts() -> None:
    bookings = [Booking("a", at("2026-11-30", "09:30"), at("2026-11-30", "10:30"))]
    request = meeting("a", earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"))
    result = find_slot(request, {}, bookings)
    assert (result.start, result.end) == (at("2026-11-30", "08:30"), at("2026-11-30", "09:30"))


def test_a_booking_across_midnight_blocks_both_days() -> None:
    bookings = [Booking("a", at("2026-11-30", "16:00"), at("2026-12-01", "10:00"))]
    request = meeting("a", earliest=at("2026-11-30", "16:00"), deadline=at("2026-12-04", "18:00"))
    assert find_slot(request, {}, bookings).start == at("2026-12-01", "10:00")


# Deadlines and blockers


def test_past_the_deadline_the_slot_is_flagged_and_the_blocker_named() -> None:
    # c meets only on Tuesdays; the deadline is Friday, the next Tuesday is inside the widening.
    request = meeting("a", "b", "c", earliest=at("2026-12-02", "09:00"), deadline=at("2026-12-04", "18:00"))
    result = find_slot(request, hours_of(c="tue 13:00-17:00"), [])
    assert result.start == at("2026-12-08", "13:00")
    assert not result.within_deadline and result.needs_attention
    assert result.blockers == ["c"]


def test_the_meeting_must_end_by_the_deadline() -> None:
    # 09:30–10:30 starts before a 10:00 deadline but ends after it: that is late, not on time.
    bookings = [Booking("a", at("2026-11-30", "08:30"), at("2026-11-30", "09:30"))]
    request = meeting("a", earliest=at("2026-11-30", "08:30"), deadline=at("2026-11-30", "10:00"))
    result = find_slot(request, {}, bookings)
    assert result.start == at("2026-11-30", "09:30")
    assert not result.within_deadline and result.needs_attention and result.blockers == ["a"]


def test_a_fully_booked_agency_is_the_blocker() -> None:
    bookings = [Booking("b", at("2026-11-30"), at("2026-12-05"))]
    request = meeting("a", "b", "c", earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"))
    result = find_slot(request, {}, bookings)
    assert result.start == at("2026-12-07", "08:30")
    assert result.needs_attention and result.blockers == ["b"]


def test_when_even_the_widened_window_is_too_short_nothing_is_returned() -> None:
    request = meeting("a", "c", earliest=at("2026-12-02", "09:00"), deadline=at("2026-12-04", "18:00"))
    result = find_slot(request, hours_of(c="tue 13:00-17:00"), [], widen_business_days=1)
    assert (result.start, result.end, result.room_id) == (None, None, None)
    assert result.needs_attention and not result.within_deadline
    assert result.blockers == ["c"]


def test_an_agency_with_no_hours_leaves_nothing_and_is_named() -> None:
    request = meeting("b", "a", earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"))
    result = find_slot(request, {"b": WeeklyHours()}, [])
    assert result.start is None and result.end is None
    assert result.needs_attention and result.blockers == ["b"]


def test_two_incompatible_agencies_are_both_blockers() -> None:
    hours = hours_of(a="mon-fri 08:30-12:00", b="mon-fri 13:00-17:15")
    request = meeting("c", "b", "a", earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"))
    result = find_slot(request, hours, [])
    assert result.start is None and result.blockers == ["a", "b"]


def test_when_no_single_absence_helps_the_least_available_are_named() -> None:
    # Pairwise disjoint hours: dropping anyone still leaves two who never meet. a has one hour a week.
    hours = hours_of(a="mon 09:00-10:00", b="mon 10:00-12:00", c="mon 12:00-17:00")
    request = meeting("a", "b", "c", earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"))
    result = find_slot(request, hours, [])
    assert result.start is None and result.blockers == ["a"]


# Rooms

ROOMS = [Room("big", 10), Room("small", 4), Room("mid-b", 6), Room("mid-a", 6)]
FIVE = ("p1", "p2", "p3", "p4", "p5")


@pytest.mark.parametrize(
    ("busy_rooms", "expected_room", "expected_start"),
    [
        ((), "mid-a", "08:30"),
        (("mid-a",), "mid-b", "08:30"),
        (("mid-a", "mid-b"), "big", "08:30"),
        (("mid-a", "mid-b", "big"), "mid-a", "09:30"),
    ],
)
def test_the_smallest_free_room_that_seats_everyone_is_chosen(
    busy_rooms: tuple[str, ...], expected_room: str, expected_start: str
) -> None:
    # "small" seats 4 of the 5 and is always free, yet never chosen.
    bookings = [Booking(f"room:{r}", at("2026-11-30", "08:00"), at("2026-11-30", "09:30")) for r in busy_rooms]
    request = meeting(*FIVE, earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"), room_needed=True)
    result = find_slot(request, {}, bookings, ROOMS)
    assert (result.room_id, result.start) == (expected_room, at("2026-11-30", expected_start))


def test_no_room_is_taken_unless_needed() -> None:
    request = meeting(*FIVE, earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"))
    assert find_slot(request, {}, [], ROOMS).room_id is None


def test_busy_rooms_are_the_blockers_when_the_agencies_are_free() -> None:
    bookings = [Booking(f"room:{r.id}", at("2026-11-30"), at("2026-12-12")) for r in ROOMS]
    request = meeting(*FIVE, earliest=at("2026-11-30", "08:30"), deadline=at("2026-12-04", "18:00"), room_needed=True)
    result = find_slot(request, {}, bookings, ROOMS)
    assert result.start is None
    assert result.blockers == ["room:big", "room:mid-a", "room:mid-b"]


# Batches


def test_schedule_many_goes_by_deadline_and_never_double_books() -> None:
    monday = at("2026-11-30", "08:30")
    requests = [
        meeting("a", "b", meeting_id="late", earliest=monday, deadline=at("2026-12-11", "18:00"), room_needed=True),
        meeting("a", "c", meeting_id="soon", earliest=monday, deadline=at("2026-12-02", "18:00"), room_needed=True),
        meeting("d", "e", meeting_id="rooms", earliest=monday, deadline=at("2026-12-11", "18:00"), room_needed=True),
    ]
    results = schedule_many(requests, {}, [], [Room("r1", 4)])
    assert list(results) == ["soon", "late", "rooms"]
    assert results["soon"].start == at("2026-11-30", "08:30")
    assert results["late"].start == at("2026-11-30", "09:30")
    assert results["rooms"].start == at("2026-11-30", "10:30")


AGENCIES = [f"agency-{i:02d}" for i in range(40)]
HOURS_TEXTS = [None, LUNCH_BREAK, "mon-fri 09:00-16:00", None, "mon,wed,fri 09:00-12:00; tue 13:00-17:00"]
BATCH_ROOMS = [Room("hall", 12), Room("room-a", 4), Room("room-b", 6)]


def random_batch(seed: int) -> tuple[list[SlotRequest], dict[str, WeeklyHours], list[Booking]]:
    """200 meetings of 2–6 of 40 agencies, deadlines within 10 business days, some existing bookings."""
    rng = random.Random(seed)
    hours = {a: parse_hours(HOURS_TEXTS[i % len(HOURS_TEXTS)], DEFAULT_HOURS) for i, a in enumerate(AGENCIES)}
    first_day = date(2026, 11, 30)
    bookings = []
    for agency in AGENCIES:
        # One booking a day at most, so existing bookings never overlap each other.
        for offset in rng.sample(range(10), rng.randint(0, 4)):
            start = datetime.combine(open_day_after(first_day, offset), time(9), tzinfo=JST)
            start += timedelta(minutes=15 * rng.randint(0, 28))
            bookings.append(Booking(agency, start, start + timedelta(minutes=30 * rng.randint(1, 6))))
    requests = []
    for k in range(200):
        day = open_day_after(first_day, rng.randint(0, 3))
        requests.append(
            SlotRequest(
                meeting_id=f"m{k:03d}",
                participants=rng.sample(AGENCIES, rng.randint(2, 6)),
                duration=timedelta(minutes=rng.choice([30, 60, 90])),
                earliest=datetime.combine(day, time(8, 30), tzinfo=JST),
                deadline=datetime.combine(open_day_after(day, rng.randint(1, 10)), time(17, 15), tzinfo=JST),
                room_needed=rng.random() < 0.5,
            )
        )
    return requests, hours, bookings


def test_two_hundred_meetings_for_forty_agencies() -> None:
    requests, hours, bookings = random_batch(seed=20261130)
    started = clock.perf_counter()
    results = schedule_many(requests, hours, bookings, BATCH_ROOMS)
    elapsed = clock.perf_counter() - started
    assert elapsed < 5.0, f"200 meetings took {elapsed:.2f}s"

    by_id = {r.meeting_id: r for r in requests}
    assert set(results) == set(by_id)
    taken: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for booking in bookings:
        taken[booking.participant].append((booking.start, booking.end))
    for meeting_id, result in results.items():
        request = by_id[meeting_id]
        if result.start is None or result.end is None:
            assert result.needs_attention and result.blockers
            continue
        assert result.end - result.start == request.duration
        assert result.within_deadline == (result.end <= request.deadline) == (not result.needs_attention)
        assert not is_closed_day(result.start.date())
        assert all(fits_hours(hours[p], result.start, result.end) for p in request.participants)
        if request.room_needed:
            room = next(r for r in BATCH_ROOMS if r.id == result.room_id)
            assert room.capacity >= len(request.participants)
            taken[f"room:{room.id}"].append((result.start, result.end))
        for participant in request.participants:
            taken[participant].append((result.start, result.end))
    for key, spans in taken.items():
        spans.sort()
        for (_, end), (start, _) in pairwise(spans):
            assert end <= start, f"{key} is double-booked at {start}"
    # Not vacuous: most meetings land inside their deadline.
    assert sum(r.within_deadline for r in results.values()) >= 150

    shuffled = random.Random(1).sample(requests, len(requests))
    again = schedule_many(shuffled, dict(reversed(hours.items())), bookings[::-1], BATCH_ROOMS[::-1])
    assert list(again.items()) == list(results.items())


# Property: every slot is valid and is the first one a brute-force scan finds

BASE_DAYS = [date(2026, 11, 20), date(2026, 12, 24), date(2027, 4, 28)]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[SlotRequest, dict[str, WeeklyHours], list[Booking], list[Room], int]:
    """A small random request with random hours, bookings and rooms around holidays."""
    people = draw(st.lists(st.sampled_from("abc"), min_size=1, max_size=3, unique=True))
    # Mostly daytime hours, so that people overlap often enough for slots and rooms to be exercised.
    minute = st.integers(6 * 60, 16 * 60).map(lambda m: m - m % 5)

    def interval(start: int, length: int) -> tuple[time, time]:
        end = min(start + length, 23 * 60 + 59)
        return time(start // 60, start % 60), time(end // 60, end % 60)

    day_hours = st.lists(st.builds(interval, minute, st.integers(30, 600)), max_size=2).map(tuple)
    hours = {p: WeeklyHours(days=tuple(draw(day_hours) for _ in range(7))) for p in people}
    base = datetime.combine(draw(st.sampled_from(BASE_DAYS)), time(), tzinfo=JST)
    busy = st.builds(
        lambda who, offset, length: Booking(
            who, base + timedelta(minutes=offset), base + timedelta(minutes=offset + length)
        ),
        st.sampled_from([*people, "room:r1", "room:r2"]),
        st.integers(0, 20 * 24 * 60),
        st.integers(5, 300),
    )
    rooms = draw(st.lists(st.builds(Room, st.sampled_from(["r1", "r2"]), st.integers(1, 4)), max_size=2))
    earliest = base + timedelta(seconds=draw(st.integers(0, 3 * 24 * 3600)))
    request = SlotRequest(
        meeting_id="m",
        participants=people,
        duration=timedelta(minutes=draw(st.integers(1, 48)) * 5),
        earliest=earliest,
        deadline=earliest + timedelta(minutes=draw(st.integers(0, 10 * 24 * 60))),
        room_needed=draw(st.booleans()),
        step=timedelta(minutes=draw(st.sampled_from([10, 15, 30, 60]))),
    )
    return request, hours, draw(st.lists(busy, max_size=8)), rooms, draw(st.integers(0, 5))


def widened_limit(deadline: datetime, business_days: int) -> datetime:
    """End of the `business_days`-th open day after the deadline's day (the deadline itself for 0)."""
    if business_days == 0:
        return deadline
    last = open_day_after(deadline.astimezone(JST).date(), business_days)
    return datetime.combine(last + timedelta(days=1), time(), tzinfo=JST)


def brute_force(
    request: SlotRequest,
    hours: Mapping[str, WeeklyHours],
    bookings: Sequence[Booking],
    rooms: Sequence[Room],
    limit: datetime,
) -> tuple[datetime, str | None] | None:
    """Every step of every day, in order, checked against every rule."""
    room_pool = sorted((r for r in rooms if r.capacity >= len(request.participants)), key=lambda r: (r.capacity, r.id))
    day = request.earliest.astimezone(JST).date()
    while day <= limit.astimezone(JST).date():
        start = datetime.combine(day, time(), tzinfo=JST)
        if is_closed_day(day):
            day += timedelta(days=1)
            continue
        while start.date() == day:
            end = start + request.duration
            if start >= request.earliest and end <= limit:
                people_free = all(
                    fits_hours(hours.get(p, DEFAULT_HOURS), start, end) and not overlaps(bookings, p, start, end)
                    for p in request.participants
                )
                if people_free and not (request.room_needed and rooms):
                    return start, None
                if people_free:
                    for room in room_pool:
                        if not overlaps(bookings, f"room:{room.id}", start, end):
                            return start, room.id
            start += request.step
        day += timedelta(days=1)
    return None


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_any_slot_is_valid_and_the_first_feasible_one(
    scenario: tuple[SlotRequest, dict[str, WeeklyHours], list[Booking], list[Room], int],
) -> None:
    request, hours, bookings, rooms, widen = scenario
    result: SlotResult = find_slot(request, hours, bookings, rooms, widen_business_days=widen)
    expected = brute_force(request, hours, bookings, rooms, widened_limit(request.deadline, widen))
    assert (result.start, result.room_id) == (expected or (None, None))
    if result.start is None or result.end is None:
        assert result.needs_attention and not result.within_deadline
        return
    assert not is_closed_day(result.start.date())
    for participant in request.participants:
        assert fits_hours(hours[participant], result.start, result.end)
        assert not overlaps(bookings, participant, result.start, result.end)
    if result.room_id is not None:
        assert not overlaps(bookings, f"room:{result.room_id}", result.start, result.end)
    assert result.within_deadline == (result.end <= request.deadline)
    assert result.needs_attention == (not result.within_deadline)
    assert (result.blockers == []) or not result.within_deadline
