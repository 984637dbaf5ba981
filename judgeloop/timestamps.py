"""How a moment stored in milliseconds is shown to people (status output, the sensor's last tick)."""

from datetime import datetime, timezone


def format_ms(ms: int | None) -> str:
    if not ms:
        return "never"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
