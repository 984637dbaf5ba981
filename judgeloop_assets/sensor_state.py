"""Reads the label sensor's state and newest tick from a Dagster instance, for ``judgeloop status``."""

from pathlib import Path

from judgeloop.timestamps import format_ms
from judgeloop.settings import Settings
from judgeloop_assets import sensor_rows


def sensor_status(home: Path | None, settings: Settings, name: str) -> dict:
    """The sensor's stored state and newest tick, read from the Dagster instance's storage at ``home``."""
    result = {"name": name, "dagster_home": str(home) if home else None, "state": None, "last_tick": None}
    if home is None:
        result["error"] = f"no Dagster instance: DAGSTER_HOME unset or missing, and no {settings.dagster_home}"
        return result
    try:
        stored = sensor_rows.default_storage_file(home)
        # The default sqlite storage is read without importing Dagster; any other through it.
        state, tick = sensor_rows.read_sensor(stored, name) if stored is not None else _read_through_dagster(home, name)
    except Exception as exc:  # a broken or foreign instance must not break status
        result["error"] = f"cannot read the Dagster instance at {home}: {type(exc).__name__}: {exc}"
        return result
    if state is not None:
        # Where the sensor stands: status counts waiting labels from here, as the sensor does.
        result["state"], result["cursor"] = state["status"], state["cursor"]
    if tick is not None:
        result["last_tick"] = {**tick, "time": format_ms(int(tick["timestamp"] * 1000))}
    return result


def _read_through_dagster(home: Path, name: str) -> tuple[dict | None, dict | None]:
    """(state, newest tick) in ``sensor_rows.read_sensor``'s shape, through ``DagsterInstance``."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        states = [s for s in instance.all_instigator_state() if s.name == name and s.instigator_type.value == "SENSOR"]
        ticks = []
        for state in states:
            ticks.extend(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1))
    found = None
    if states:
        found = {"status": states[0].status.value, "cursor": getattr(states[0].instigator_data, "cursor", None)}
    tick = max(ticks, key=lambda t: t.timestamp, default=None)
    if tick is None:
        return found, None
    return found, {
        "timestamp": tick.timestamp,
        "status": tick.status.value,
        "skip_reason": tick.skip_reason,
        "run_ids": list(tick.run_ids or []),
        "error": tick.error.message.strip() if tick.error else None,
    }
