"""Scores production traffic that arrives after the foundation, and only that.

An application keeps logging traces (or ``judgeloop traces import`` brings more). Each tick looks
at the traces logged since its cursor (minus a margin for traces written late: MLflow stamps a
trace with its start, and an application may export it a while later); when some are production
traffic, completed and not yet tagged, it requests one ``score_new_traffic`` run:
``tagged_traces`` scores only the untagged traces (scores an interrupted run already wrote are
kept, not paid again), ``eval_dataset`` merges only traces it does not hold yet, and
``labeling_session`` queues only traces not in the queue. It requests nothing before the
foundation has run once, nor while a traffic or foundation run is in progress.
"""

import dagster as dg

from judgeloop.run_names import FOUNDATION_JOB, RESOURCE_KEY, TRAFFIC_JOB, run_limit_tags
from judgeloop.settings import Settings
from sensors.sme_labels_sensor import ACTIVE  # one list of run states that count as in flight

traffic_job = dg.define_asset_job(
    TRAFFIC_JOB,
    selection=dg.AssetSelection.assets("tagged_traces", "eval_dataset", "labeling_session"),
    description="Score and tag traffic that arrived after the foundation; add it to the dataset and the review queue.",
    tags=run_limit_tags(),
)

# Traces stamped up to this long before the cursor are looked at again (a late export is not
# missed); a set of traces already requested has the same run key, which Dagster runs once.
LATE_MARGIN_MS = 10 * 60 * 1000


def build_new_traffic_sensor(settings: Settings) -> dg.SensorDefinition:
    return dg.sensor(
        name="new_traffic_sensor",
        job=traffic_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.traffic_interval_seconds,
        description="Scores, tags and queues production traces logged after the foundation (only the untagged ones).",
        required_resource_keys={RESOURCE_KEY},
    )(find_new_traffic)


def untagged_since(experiment_id: str, since_ms: int) -> list:
    """Completed production traces stamped after ``since_ms`` that carry no eval tag (infos only)."""
    from mlflow import MlflowClient

    from judgeloop.tracing.traces import EVAL_TAG
    from judgeloop.tracing.traffic import is_production

    client, found, token = MlflowClient(), [], None
    while True:
        page = client.search_traces(
            locations=[experiment_id], filter_string=f"timestamp_ms > {int(since_ms)}",
            max_results=500, page_token=token, include_spans=False,
        )
        found.extend(
            t.info for t in page
            if t.info.state == "OK" and (t.info.tags or {}).get(EVAL_TAG) is None and is_production(t)
        )
        token = page.token
        if not token:
            return found


def find_new_traffic(context: dg.SensorEvaluationContext):
    if context.instance.get_latest_materialization_event(dg.AssetKey("labeling_session")) is None:
        return dg.SkipReason("the foundation job has not run yet: it scores the traffic there is")
    busy = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=TRAFFIC_JOB, statuses=ACTIVE), limit=1
    ) or context.instance.get_runs(filters=dg.RunsFilter(job_name=FOUNDATION_JOB, statuses=ACTIVE), limit=1)
    if busy:
        return dg.SkipReason(f"run {busy[0].run_id[:8]} ({busy[0].job_name}) is in progress: new traffic waits for it")
    # The resource is bound in judgeloop_assets/definitions.py; read by key, never imported.
    _, experiment_id = getattr(context.resources, RESOURCE_KEY).connect()
    cursor = int(context.cursor or 0)
    new = untagged_since(experiment_id, max(0, cursor - LATE_MARGIN_MS))
    if not new:
        return dg.SkipReason("no new production traces to score")
    newest = max(info.timestamp_ms for info in new)
    context.update_cursor(str(max(cursor, newest)))
    return dg.RunRequest(run_key=f"traffic-{newest}-{len(new)}", tags={"judgeloop/new_traces": str(len(new))})
