"""Deterministic alignment / held-out split by trace id.

A stable hash (not Python's salted ``hash``) decides, so a trace stays on its side forever
as labels accumulate and the held-out set never leaks into alignment.
"""

import hashlib


def heldout_score(trace_id: str) -> float:
    digest = hashlib.sha256(trace_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_heldout(trace_id: str, fraction: float) -> bool:
    return heldout_score(trace_id) < fraction


def split(trace_ids, fraction: float) -> tuple[list[str], list[str]]:
    """(alignment ids, held-out ids), each in the given order."""
    align, heldout = [], []
    for trace_id in trace_ids:
        (heldout if is_heldout(trace_id, fraction) else align).append(trace_id)
    return align, heldout
