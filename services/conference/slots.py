"""Slot finder for case meetings (ケース会議): pure and deterministic, in Japan time.

A slot starts on the step grid (counted from midnight JST), lies on an open day (`is_closed_day`),
inside one opening interval of every participant, clear of every participant's bookings and, when a
room is needed, inside the free time of one room that seats everyone. Rooms are booked like
participants, under the key "room:<id>". Intervals are half-open, so back-to-back meetings are fine.
"""

from bisect import insort
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

# Opening hours are read by shared.calendar, so the router's directory check reads them exactly as
# the slot finder does; the names are re-exported for the finder's callers.
from shared.calendar import DAY_NAMES as DAY_NAMES
from shared.calendar import DEFAULT_HOURS as DEFAULT_HOURS
from shared.calendar import JST, is_closed_day
from shared.calendar import HoursFormatError as HoursFormatError
from shared.calendar import Interval as Interval
from shared.calendar import WeeklyHours as WeeklyHours
from shared.calendar import parse_hours as parse_hours

_Span = tuple[datetime, datetime]

ROOM_PREFIX = "room:"
_ONE_DAY = timedelta(days=1)


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")


@dataclass(frozen=True, slots=True)
class Booking:
    """Time already taken by a participant (or by a room, as participant "room:<id>")."""

    participant: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _require_aware("booking start", self.start)
        _require_aware("booking end", self.end)
        if self.end <= self.start:
            raise ValueError(f"booking of {self.participant} ends at or before its start")


@dataclass(frozen=True, slots=True)
class Room:
    """A meeting room and how many participants it seats."""

    id: str
    capacity: int

    @property
    def booking_key(self) -> str:
        """The participant name under which this room's bookings are kept."""
        return ROOM_PREFIX + self.id


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """A meeting to place: who must attend, for how long, from when and by when (end of the meeting)."""

    meeting_id: str
    participants: Sequence[str]
    duration: timedelta
    earliest: datetime
    deadline: datetime
    room_needed: bool = False
    step: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        # Sorted and unique, so the search never depends on the order a caller listed agencies in.
        object.__setattr__(self, "participants", tuple(sorted(set(self.participants))))
        if not self.participants:
            raise ValueError(f"meeting {self.meeting_id}: no participants")
        if self.duration <= timedelta(0) or self.step <= timedelta(0):
            raise ValueError(f"meeting {self.meeting_id}: duration and step must be positive")
        _require_aware("earliest", self.earliest)
        _require_aware("deadline", self.deadline)


@dataclass(frozen=True, slots=True)
class SlotResult:
    """Where a meeting landed (start/end None when nowhere), whether that needs a person, and why."""

    meeting_id: str
    start: datetime | None
    end: datetime | None
    room_id: str | None
    within_deadline: bool
    needs_attention: bool
    reason: str
    blockers: list[str] = field(default_factory=list, hash=False)


class _BusyIndex:
    """Bookings by (participant, JST day), each list sorted, so checking a day reads only that day's bookings."""

    def __init__(self, bookings: Iterable[Booking]) -> None:
        self._by_day: defaultdict[tuple[str, date], list[_Span]] = defaultdict(list)
        for booking in bookings:
            self.add(booking.participant, booking.start, booking.end)

    def add(self, key: str, start: datetime, end: datetime) -> None:
        start, end = start.astimezone(JST), end.astimezone(JST)
        day, last = start.date(), (end - timedelta(microseconds=1)).date()
        while day <= last:
            insort(self._by_day[(key, day)], (start, end))
            day += _ONE_DAY

    def on(self, key: str, day: date) -> list[_Span]:
        return self._by_day.get((key, day), [])


def _whole_day(day: date) -> _Span:
    midnight = datetime.combine(day, time(), tzinfo=JST)
    return midnight, midnight + _ONE_DAY


def _subtract(spans: list[_Span], busy: Sequence[_Span]) -> list[_Span]:
    if not busy:
        return spans
    free: list[_Span] = []
    for start, end in spans:
        cursor = start
        for busy_start, busy_end in busy:
            if busy_end <= cursor:
                continue
            if busy_start >= end:
                break
            if busy_start > cursor:
                free.append((cursor, busy_start))
            cursor = max(cursor, busy_end)
        if cursor < end:
            free.append((cursor, end))
    return free


def _intersect(left: list[_Span], right: list[_Span]) -> list[_Span]:
    both: list[_Span] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start, end = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if start < end:
            both.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return both


def _free(participant: str, day: date, hours: Mapping[str, WeeklyHours], busy: _BusyIndex) -> list[_Span]:
    # An agency without configured hours keeps the municipal office's hours.
    opening = hours.get(participant, DEFAULT_HOURS).days[day.weekday()]
    spans = [(datetime.combine(day, s, tzinfo=JST), datetime.combine(day, e, tzinfo=JST)) for s, e in opening]
    return _subtract(spans, busy.on(participant, day))


def _common_free(
    participants: Sequence[str], day: date, hours: Mapping[str, WeeklyHours], busy: _BusyIndex
) -> list[_Span]:
    free = [_whole_day(day)]
    for participant in participants:
        free = _intersect(free, _free(participant, day, hours, busy))
        if not free:
            break
    return free


def _ceil_to_step(moment: datetime, step: timedelta) -> datetime:
    midnight = datetime.combine(moment.date(), time(), tzinfo=JST)
    return midnight - ((midnight - moment) // step) * step


def _first_start(
    free: list[_Span], not_before: datetime, not_after: datetime, duration: timedelta, step: timedelta
) -> datetime | None:
    for start, end in free:
        candidate = _ceil_to_step(max(start, not_before), step)
        if candidate + duration <= min(end, not_after):
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class _Search:
    hours: Mapping[str, WeeklyHours]
    busy: _BusyIndex
    earliest: datetime
    duration: timedelta
    step: timedelta

    def first_fit(
        self, participants: Sequence[str], rooms: Sequence[Room] | None, until: datetime
    ) -> tuple[datetime, Room | None] | None:
        """Earliest start with the meeting over by `until`; `rooms` None means no room is needed."""
        if rooms is not None and not rooms:
            return None
        day, last = self.earliest.date(), until.astimezone(JST).date()
        while day <= last:
            if not is_closed_day(day):
                found = self._on(day, participants, rooms, until)
                if found is not None:
                    return found
            day += _ONE_DAY
        return None

    def _on(
        self, day: date, participants: Sequence[str], rooms: Sequence[Room] | None, until: datetime
    ) -> tuple[datetime, Room | None] | None:
        free = _common_free(participants, day, self.hours, self.busy)
        if not free:
            return None
        if rooms is None:
            start = _first_start(free, self.earliest, until, self.duration, self.step)
            return None if start is None else (start, None)
        best: tuple[datetime, Room | None] | None = None
        for room in rooms:
            room_free = _intersect(free, _subtract([_whole_day(day)], self.busy.on(room.booking_key, day)))
            start = _first_start(room_free, self.earliest, until, self.duration, self.step)
            # Strictly earlier only: on a tie the room met first (smallest, then lowest id) keeps the slot.
            if start is not None and (best is None or start < best[0]):
                best = (start, room)
        return best

    def free_starts(self, participant: str, until: datetime) -> int:
        """How many grid starts up to `until` would suit `participant` alone."""
        count = 0
        day, last = self.earliest.date(), until.astimezone(JST).date()
        while day <= last:
            if not is_closed_day(day):
                for start, end in _free(participant, day, self.hours, self.busy):
                    first = _ceil_to_step(max(start, self.earliest), self.step)
                    latest = min(end, until) - self.duration
                    if first <= latest:
                        count += (latest - first) // self.step + 1
            day += _ONE_DAY
        return count


def _room_pool(request: SlotRequest, rooms: Sequence[Room]) -> list[Room] | None:
    if not (request.room_needed and rooms):
        return None
    seated = [room for room in rooms if room.capacity >= len(request.participants)]
    return sorted(seated, key=lambda room: (room.capacity, room.id))


def search_end(deadline: datetime, *, widen_business_days: int = 5) -> datetime:
    """The latest moment `find_slot` may place a meeting with this deadline: bookings after it cannot matter."""
    return _widened(deadline, widen_business_days) + _ONE_DAY


def _widened(deadline: datetime, business_days: int) -> datetime:
    if business_days < 0:
        raise ValueError("widen_business_days must not be negative")
    if business_days == 0:
        return deadline
    day = deadline.astimezone(JST).date()
    while business_days > 0:
        day += _ONE_DAY
        if not is_closed_day(day):
            business_days -= 1
    return _whole_day(day)[1]


def _blockers(
    search: _Search, participants: Sequence[str], rooms: list[Room] | None, deadline: datetime
) -> tuple[list[str], str]:
    # The room keeps the full headcount, so a blocker is someone whose calendar is in the way.
    helping = [
        p for p in participants if search.first_fit([q for q in participants if q != p], rooms, deadline) is not None
    ]
    if helping:
        return helping, "without any one of the blockers a slot fits within the deadline"
    if rooms is not None and search.first_fit(participants, None, deadline) is not None:
        if not rooms:
            return [], f"no room seats {len(participants)} participants"
        return sorted(room.booking_key for room in rooms), "the participants are free together but no room is"
    if search.first_fit([], None, deadline) is None:
        return [], "no business time between earliest and the deadline"
    counts = {p: search.free_starts(p, deadline) for p in participants}
    fewest = min(counts.values())
    fewest_free = [p for p in participants if counts[p] == fewest]
    return fewest_free, "no single absence helps; blockers have the least free time"


def _find(
    request: SlotRequest,
    hours: Mapping[str, WeeklyHours],
    busy: _BusyIndex,
    rooms: Sequence[Room],
    widen_business_days: int,
) -> SlotResult:
    deadline = request.deadline.astimezone(JST)
    search = _Search(hours, busy, request.earliest.astimezone(JST), request.duration, request.step)
    pool = _room_pool(request, rooms)
    # One scan to the widened limit: its first fit is the in-deadline first fit whenever one exists.
    found = search.first_fit(request.participants, pool, _widened(deadline, widen_business_days))
    start = None if found is None else found[0]
    room_id = None if found is None or found[1] is None else found[1].id
    end = None if start is None else start + request.duration
    if end is not None and end <= deadline:
        return SlotResult(
            meeting_id=request.meeting_id,
            start=start,
            end=end,
            room_id=room_id,
            within_deadline=True,
            needs_attention=False,
            reason="first free slot within the deadline",
        )
    blockers, why = _blockers(search, request.participants, pool, deadline)
    if end is None:
        reason = f"no slot within the deadline or {widen_business_days} business days after it; {why}"
    else:
        reason = f"no slot within the deadline; first slot within {widen_business_days} business days after it; {why}"
    return SlotResult(
        meeting_id=request.meeting_id,
        start=start,
        end=end,
        room_id=room_id,
        within_deadline=False,
        needs_attention=True,
        reason=reason,
        blockers=blockers,
    )


def find_slot(
    request: SlotRequest,
    hours: Mapping[str, WeeklyHours],
    bookings: Sequence[Booking],
    rooms: Sequence[Room] = (),
    *,
    widen_business_days: int = 5,
) -> SlotResult:
    """First slot within the deadline, else within `widen_business_days` open days after it (flagged)."""
    return _find(request, hours, _BusyIndex(bookings), rooms, widen_business_days)


def schedule_many(
    requests: Sequence[SlotRequest],
    hours: Mapping[str, WeeklyHours],
    bookings: Sequence[Booking],
    rooms: Sequence[Room] = (),
    *,
    widen_business_days: int = 5,
) -> dict[str, SlotResult]:
    """Place meetings earliest deadline first (then by id), booking each slot so no one is double-booked."""
    ids = [request.meeting_id for request in requests]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate meeting ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    busy = _BusyIndex(bookings)
    results: dict[str, SlotResult] = {}
    for request in sorted(requests, key=lambda r: (r.deadline, r.meeting_id)):
        result = _find(request, hours, busy, rooms, widen_business_days)
        if result.start is not None and result.end is not None:
            for participant in request.participants:
                busy.add(participant, result.start, result.end)
            if result.room_id is not None:
                busy.add(ROOM_PREFIX + result.room_id, result.start, result.end)
        results[request.meeting_id] = result
    return results
