"""Seeds derived from stable text (problem ids, answers), the same in every process and Python run."""

from __future__ import annotations

import hashlib


def stable_seed(*parts) -> int:
    """A 63-bit seed from the parts' text (sha256), independent of PYTHONHASHSEED, sharding and order."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)
