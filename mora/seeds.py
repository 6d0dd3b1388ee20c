"""Seeds derived from one base seed and a purpose: independent of run order, so resumed work matches."""

from __future__ import annotations

import hashlib


def derive_seed(base: int, *parts) -> int:
    """A stable 63-bit seed for one purpose."""
    digest = hashlib.sha256(":".join(map(str, (base, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
