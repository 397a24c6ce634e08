"""Identifiers of the rows and events Marugoto makes: UUID version 7 (RFC 9562 §5.7).

A version 7 UUID starts with the time it was made (Unix milliseconds), then 74 random bits. Rows keyed
by such ids land at the right-hand end of their primary-key index, as rows keyed by serial numbers do;
random (version 4) keys land anywhere, so once an index outgrows PostgreSQL's buffers every insert reads
and rewrites some other page of it. The random part keeps ids unguessable and unique across instances.
"""

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0x2 << 62
_CLEAR = ~(0xF << 76 | 0x3 << 62)


def new_id() -> str:
    """A new identifier: a version 7 UUID in its usual text form."""
    milliseconds = time.time_ns() // 1_000_000
    value = (milliseconds & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")
    return str(uuid.UUID(int=value & _CLEAR | _VERSION_7 | _VARIANT_RFC))
