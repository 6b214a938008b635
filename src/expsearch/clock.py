"""Timestamps written into results: one format everywhere, so that a ledger's
times (a shard's start, an experiment's finish) compare and subtract.

    utc_now()   # "2026-11-22T13:02:09+00:00"
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
