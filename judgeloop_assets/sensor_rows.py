"""Reads a sensor's stored state and newest tick straight from a Dagster instance's default sqlite
storage, past Dagster's public API: ``judgeloop status`` then needs no import of Dagster (about
1.4 s of a command that should answer in a few seconds).

Dagster keeps both in ``<DAGSTER_HOME>/schedules/schedules.db``: table ``instigators`` (one row per
sensor, its ``InstigatorState`` serialized as JSON) and table ``job_ticks`` (one row per tick, its
``TickData`` as JSON). ``tests/test_sensor_rows.py`` checks this reader against
``DagsterInstance`` on the pinned Dagster; any other storage (PostgreSQL, a ``storage:`` section in
dagster.yaml) is read through ``DagsterInstance`` instead (``judgeloop_assets.sensor_state``).
"""

import json
import sqlite3
from pathlib import Path

SCHEDULES_DB = Path("schedules") / "schedules.db"


def default_storage_file(home: Path) -> Path | None:
    """The sqlite file holding sensor state, when the instance at ``home`` uses Dagster's default storage."""
    config = home / "dagster.yaml"
    text = config.read_text() if config.exists() else ""
    if any(line.split(":")[0].strip() in ("storage", "schedule_storage") for line in text.splitlines() if not line.startswith(" ")):
        return None
    path = home / SCHEDULES_DB
    return path if path.exists() else None


def _enum(value) -> str | None:
    # Serialized as {"__enum__": "InstigatorStatus.RUNNING"}.
    return value["__enum__"].rsplit(".", 1)[-1] if isinstance(value, dict) and "__enum__" in value else None


def read_sensor(path: Path, name: str) -> tuple[dict | None, dict | None]:
    """(state, newest tick) of sensor ``name``: ``{"status", "cursor"}`` and ``{"timestamp", "status",
    "skip_reason", "run_ids", "error"}``, each None when absent."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        states = []
        for selector_id, body in connection.execute(
            "SELECT selector_id, instigator_body FROM instigators WHERE instigator_type = 'SENSOR'"
        ):
            data = json.loads(body)
            if data.get("origin", {}).get("job_name") == name:
                states.append((selector_id, data))
        if not states:
            return None, None
        selector_id, data = states[0]
        state = {"status": _enum(data.get("status")), "cursor": (data.get("job_specific_data") or {}).get("cursor")}
        row = connection.execute(
            "SELECT tick_body FROM job_ticks WHERE selector_id = ? ORDER BY id DESC LIMIT 1", (selector_id,)
        ).fetchone()
    finally:
        connection.close()
    if row is None:
        return state, None
    tick = json.loads(row[0])
    error = tick.get("error")
    return state, {
        "timestamp": tick.get("timestamp"),
        "status": _enum(tick.get("status")),
        "skip_reason": tick.get("skip_reason"),
        "run_ids": list(tick.get("run_ids") or []),
        "error": error.get("message", "").strip() if isinstance(error, dict) else None,
    }
