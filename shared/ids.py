"""Identifiers of the rows and events Marugoto makes: UUID version 7 (RFC 9562 §5.7).

A version 7 UUID starts with the time it was made (Unix milliseconds), then 74 random bits. Rows keyed
by such ids land at the right-hand end of their primary-key index, as rows keyed by serial numbers do;
random (version 4) keys land anywhere, so once an index outgrows PostgreSQL's buffers every insert reads
and rewrites some other page of it. The random part keeps ids unguessable and unique across instances.
"""

import os
import time

# The variant's two bits (10) and two random bits make the first digit of the fourth group.
_VARIANT_DIGIT = "89ab"


def new_id() -> str:
    """A new identifier: a version 7 UUID in its usual text form.

    Written as text directly rather than through `uuid.UUID`, which costs more than the rest of the
    function, and the router makes several ids per decision.
    """
    stamp = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}"
    bits = os.urandom(10).hex()  # 80 random bits; 74 are used: 12 after the version, 62 after the variant
    variant = _VARIANT_DIGIT[int(bits[3], 16) & 0x3]
    return f"{stamp[:8]}-{stamp[8:]}-7{bits[:3]}-{variant}{bits[4:7]}-{bits[7:19]}"
