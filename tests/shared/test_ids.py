"""Identifiers are RFC 9562 version 7 UUIDs: time first, random after, distinct."""

import time
import uuid

from shared.ids import new_id


def test_ids_are_version_7_uuids_ordered_by_the_time_they_were_made() -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(2000)]
    after_ms = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(i) for i in ids]
    assert all(str(u) == i for u, i in zip(parsed, ids, strict=True)), "the usual 36-character text form"
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    stamps = [u.int >> 80 for u in parsed]
    assert before_ms <= min(stamps) and max(stamps) <= after_ms, "the first 48 bits are the Unix time in ms"
    assert stamps == sorted(stamps), "ids made later never sort before earlier ones' milliseconds"
    assert len(set(ids)) == len(ids)
    # 74 random bits: within one millisecond, the rest of the id differs from one id to the next.
    randoms = {u.int & ((1 << 76) - 1) for u in parsed}
    assert len(randoms) == len(ids)
