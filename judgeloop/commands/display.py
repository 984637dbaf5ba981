"""Small formatting helpers for command output."""

import math


def format_ms(ms: int | None) -> str:
    if not ms:
        return "never"
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def finite(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None
