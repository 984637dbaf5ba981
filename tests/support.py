"""Helpers shared by the asset tests: materialize, read metadata and failures, count MLflow state."""

import json
import dagster as dg

from judgeloop_assets.definitions import ALL_ASSETS, FOUNDATION
from judgeloop_assets.resources import JudgeloopConfig


def materialize(instance, selection=None, raise_on_error=False, **config):
    """Materialize ``selection`` (asset names) of the whole graph; by default the foundation."""
    return dg.materialize(
        ALL_ASSETS,
        selection=selection or [asset.key for asset in FOUNDATION],
        resources={"judgeloop": JudgeloopConfig(**config)},
        instance=instance,
        raise_on_error=raise_on_error,
    )


def metadata(result, asset: str) -> dict:
    mats = result.asset_materializations_for_node(asset)
    assert mats, f"{asset} was not materialized"
    found = {k: v.value for k, v in mats[-1].metadata.items()}
    # Single numbers that do not deserve a plot sit in one "details" table: read them back too.
    details = found.get("details")
    for record in getattr(details, "records", None) or []:
        name, value = record.data["name"], record.data["value"]
        try:
            found.setdefault(name, json.loads(value))
        except ValueError:
            found.setdefault(name, value)
    return found


def materialized(result, asset: str) -> bool:
    return bool(result.asset_materializations_for_node(asset))


def failure_text(result, asset: str) -> str:
    """The failed step's error with its whole cause chain (Dagster wraps the user exception)."""
    failure = result.failure_data_for_node(asset)
    assert failure is not None, f"{asset} did not fail"
    parts, error = [], failure.error
    while error is not None:
        parts.append(f"{error.cls_name}: {error.message}")
        error = error.cause
    return "\n".join(parts)


def trace_count(experiment_id: str) -> int:
    from judgeloop.tracing.traces import search_all

    return len(search_all(experiment_id))



def restamp(settings, assessment_id: str, updated_ms: int) -> None:
    """Set a label's update time as a client with a wrong clock (or a slow writer) would."""
    import sqlalchemy as sa

    engine = sa.create_engine(settings.resolved_tracking_uri)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE assessments SET last_updated_timestamp = :t WHERE assessment_id = :a"),
            {"t": updated_ms, "a": assessment_id},
        )
    engine.dispose()


def openai_judge_and_agent(monkeypatch, tmp_path, questions: list[str]) -> None:
    """The judge as ``openai:/fake-judge`` (no OpenAI variables left over) and the echo agent on
    ``questions``: the set-up of the tests that point the OpenAI client at a local server."""
    for key in ("OPENAI_API_BASE", "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_ORGANIZATION", "OPENAI_API_TYPE"):
        monkeypatch.delenv(key, raising=False)
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(f'{{"question": "{q}"}}\n' for q in questions))
    monkeypatch.setenv("JUDGELOOP_JUDGE_MODEL", "openai:/fake-judge")
    monkeypatch.setenv("JUDGELOOP_AGENT", "tests.agents:echo_agent")
    monkeypatch.setenv("JUDGELOOP_QUESTIONS_PATH", str(path))


def accept_any_split(monkeypatch) -> None:
    """Held-out minimums of 1 for tests about something else than the split: the demo's traces get
    random ids, so 24 of them now and then hold out fewer than the default 3 (about 1 run in 250)
    and alignment refuses to run. The minimums themselves are tested on their own."""
    monkeypatch.setenv("JUDGELOOP_MIN_HELDOUT_LABELS", "1")
    monkeypatch.setenv("JUDGELOOP_MIN_SCORED_HELDOUT", "1")
