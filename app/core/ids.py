"""Opaque, unguessable ids with a kind prefix (`clt_…`, `asg_…`).

26 Crockford base32 characters: 48 bits of milliseconds then 80 random bits, so ids sort by
creation time (index locality, newest-first by primary key) while staying unguessable. Within
one millisecond a process's ids still sort in the order they were made (the random part grows
by a random step, as in ULID's monotonic mode): two events of one transaction keep their order.
"""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rest = divmod(value, 32)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


_RANDOM_BITS = 80
_last = (0, 0)
_lock = threading.Lock()


def new_id(prefix: str) -> str:
    global _last
    millis = time.time_ns() // 1_000_000
    with _lock:
        last_millis, last_random = _last
        if millis > last_millis:
            random = secrets.randbits(_RANDOM_BITS)
        else:  # the same millisecond (or the clock stepped back): after the last one
            millis, random = last_millis, last_random + 1 + secrets.randbits(32)
            if random >= 1 << _RANDOM_BITS:
                millis, random = millis + 1, secrets.randbits(_RANDOM_BITS)
        _last = (millis, random)
    return f"{prefix}_{_encode(millis, 10)}{_encode(random, 16)}"


def new_secret(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def made_before(earlier: str, later: str) -> bool:
    """Whether the object with id `earlier` was made before (or in the same millisecond as)
    the one with id `later`, whatever their kinds: the ids start with their time."""
    return earlier.partition("_")[2] <= later.partition("_")[2]
