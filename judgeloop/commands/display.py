"""Small formatting helpers for command output."""

import math


def finite(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None
