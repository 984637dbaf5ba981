"""Watches MLflow for new or edited SME labels and re-aligns the judge when enough arrived.

Each tick, in order (every tick that requests nothing says why, with the numbers, in the
sensor's tick list):
1. Settle the re-alignment it requested last: succeeded -> its labels are used; failed or
   cancelled -> its labels wait again, retried after a back-off (``judgeloop.sme_labels.waiting``).
2. While any re-alignment is queued or running, request nothing: new labels keep waiting and
   are counted in the next run, instead of queueing runs that find nothing left to do.
3. At ``label_threshold`` waiting labels, request one re-alignment covering all of them.
4. Otherwise, finish what an interrupted re-alignment left undone: a promoted judge the
   prompt was never optimized with gets an ``optimized_prompt`` run (a bounded number of tries).
"""

import time

import dagster as dg

from judgeloop.run_names import REALIGN_JOB, RESOURCE_KEY, run_limit_tags
from judgeloop.settings import Settings
from sensors.pushed_runs import pushed_run_to_adopt

realign_job = dg.define_asset_job(
    REALIGN_JOB,
    # Only what decides the promotion, then what depends on the promoted judge: live_agreement
    # is measured in its own run after this one (sensors/live_agreement_sensor.py).
    selection=dg.AssetSelection.assets("aligned_judge").downstream(),
    description="Re-align the judge to the SMEs and refresh everything downstream of it.",
    tags=run_limit_tags(),
)

ACTIVE = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
]
RUN_KEY_TAG = "dagster/run_key"
FINISH_TAG = "judgeloop/finish"
MAX_FINISH_ATTEMPTS = 3


def _now() -> float:
    return time.time()


def active_realign_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=REALIGN_JOB, statuses=ACTIVE), limit=5))


def _run_status(instance: dg.DagsterInstance, run_key: str) -> dg.DagsterRunStatus | None:
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=REALIGN_JOB, tags={RUN_KEY_TAG: run_key}), limit=1)
    return runs[0].status if runs else None


def settle(state, instance: dg.DagsterInstance, interval_seconds: float, now: float):
    """``state`` with its in-flight re-alignment resolved, if that run has finished (or never ran)."""
    if state.inflight is None:
        return state
    status = _run_status(instance, state.inflight.run_key)
    if status in ACTIVE:
        return state
    if status == dg.DagsterRunStatus.SUCCESS:
        return state.succeeded()
    # Failed, cancelled, or never created: its labels were not used and wait again.
    return state.failed(now, interval_seconds)


def _finish_request(settings, experiment_id: str, instance: dg.DagsterInstance, now: float, interval: float):
    """A run request for the optimization an interrupted re-alignment skipped, or a skip sentence."""
    from judgeloop.judging import unfinished
    from judgeloop.sme_labels import waiting

    pending = unfinished.unfinished_optimization(settings, experiment_id)
    if pending is None:
        return None, None
    version, why = pending
    value = f"optimized_prompt-judge-v{version}"
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=REALIGN_JOB, tags={FINISH_TAG: value}))
    tries = len(records)
    if tries >= MAX_FINISH_ATTEMPTS:
        return None, f"{why}; gave up after {tries} failed tries (materialize optimized_prompt to retry)"
    if records:
        ended = max((r.end_time or r.create_timestamp.timestamp()) for r in records)
        retry_at = ended + waiting.backoff_seconds(tries, interval)
        if now < retry_at:
            return None, f"{why}; try {tries} failed, retrying after {time.strftime('%H:%M:%S', time.gmtime(retry_at))} UTC"
    request = dg.RunRequest(
        run_key=f"finish-{value}-try{tries}",
        asset_selection=[dg.AssetKey("optimized_prompt")],
        tags={FINISH_TAG: value},
    )
    return request, why


def build_sme_labels_sensor(settings: Settings) -> dg.SensorDefinition:
    """The sensor, ticking at the deployment's interval (read once, when the code location loads)."""
    return dg.sensor(
        name="sme_labels_sensor",
        job=realign_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        description=(
            "Counts usable SME labels no successful re-alignment has used; at label_threshold it reports "
            "sme_labels and re-aligns (never while a re-alignment is queued or running)."
        ),
        required_resource_keys={RESOURCE_KEY},
    )(count_new_labels)


def count_new_labels(context: dg.SensorEvaluationContext):
    from judgeloop.sme_labels import labels, waiting

    # The resource is bound in judgeloop_assets/definitions.py; read by key, never imported.
    settings, experiment_id = getattr(context.resources, RESOURCE_KEY).connect()
    now, interval = _now(), float(settings.sensor_interval_seconds)
    state, repair = waiting.RealignState.decode(context.cursor).repaired(now)
    if repair:
        context.log.warning(repair)
    # Active runs first, then settle: a run that ends in between is then seen still active (this
    # tick waits) and settled (its failure counted, its labels waiting again), never neither.
    active = active_realign_runs(context.instance)
    state = settle(state, context.instance, interval, now)
    found = waiting.waiting_labels(settings, experiment_id, state.consumed)
    # A run the label path pushed for exactly these labels is this sensor's run too.
    pushed = pushed_run_to_adopt(state, context.instance)
    events = []
    if pushed:
        run_key, up_to = pushed
        taken = waiting.taken_up_to(found, up_to)
        context.log.info(f"{taken.count} new SME labels taken by the pushed run {run_key}")
        events.append(_labels_event(taken, state, experiment_id))
        state = settle(state.requested(run_key, taken.batch.cursor, taken.count), context.instance, interval, now)
        found = waiting.waiting_labels(settings, experiment_id, state.consumed)
    state = waiting.noticed_backdated(state, settings, experiment_id, now)
    count, threshold = found.count + state.backdated, settings.label_threshold
    counted = f"{count} new SME label(s) waiting, {threshold} needed to re-align" + (
        f" ({state.backdated} of them stamped in the past)" if state.backdated else ""
    ) + (f" ({len(found.rejected)} unusable label(s) ignored)" if found.rejected else "")

    def skip(reason: str) -> dg.SensorResult:
        # The cursor is saved with the skip: a settled run must not be settled twice.
        return dg.SensorResult(skip_reason=reason, cursor=state.encode(), asset_events=events)

    if active:
        run = active[0]
        return skip(f"re-alignment run {run.run_id[:8]} is {run.status.value.lower()}: {counted}; they count in the next run")
    if count < threshold:
        # The position stays put: waiting labels keep counting toward the next batch.
        request, why = _finish_request(settings, experiment_id, context.instance, now, interval)
        if request is None:
            return skip(counted + (f"; {why}" if why else ""))
        context.log.info(f"{why}: requesting {request.run_key}")
        return dg.SensorResult(run_requests=[request], cursor=state.encode(), asset_events=events)
    if state.failures and now < state.retry_at:
        return skip(
            f"{counted}; the last {state.failures} re-alignment(s) failed, retrying after "
            f"{time.strftime('%H:%M:%S', time.gmtime(state.retry_at))} UTC"
        )
    late = active_realign_runs(context.instance)
    if late:
        # Launched by the label path while this tick read the labels (a push races the poll): the
        # next tick takes it as its own instead of a second run for the same labels.
        return skip(f"re-alignment run {late[0].run_id[:8]} was launched while this tick counted: {counted}; "
                    "the next tick takes it")
    batch = found.batch
    run_key = f"sme-labels-{batch.cursor.updated_ms}-{batch.cursor.assessment_id}" + (
        f"-retry{state.failures}" if state.failures else ""
    )
    context.log.info(f"{count} new SME labels (read {batch.rows_read} rows); requesting {run_key}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={
            "judgeloop/new_labels": str(count),
            # The run aligns on labels up to the newest one counted here, not on what arrives later
            # (labels stamped in the past are older than that: they are taken too).
            labels.LABELS_UP_TO_TAG: labels.encode_key(max((label.key for label in found.labels), default=state.consumed.key)),
        })],
        asset_events=[*events, _labels_event(found, state, experiment_id, count)],
        cursor=state.requested(run_key, batch.cursor, count).encode(),
    )


def _labels_event(found, state, experiment_id: str, count: int | None = None) -> dg.AssetMaterialization:
    """sme_labels reported as changed (runless): the labels a re-alignment takes, requested or pushed."""
    from sensors.label_metadata import rejections_table

    return dg.AssetMaterialization(
        "sme_labels",
        description="New or edited SME labels in MLflow",
        metadata={
            "new_labels": found.count if count is None else count,
            "unusable_labels": len(found.rejected),
            "unusable_label_details": rejections_table(found.rejected),
            "reviewers": ", ".join(sorted({str(label.reviewer) for label in found.labels})),
            "newest_label_ms": found.batch.cursor.updated_ms,
            "retry_of_failed_runs": state.failures,
            "experiment_id": experiment_id,
        },
    )


def __getattr__(name: str):
    # ``from sensors.sme_labels_sensor import sme_labels_sensor`` still works: the sensor is built on
    # first access with the process's settings, never at import time.
    if name == "sme_labels_sensor":
        from judgeloop.settings import load_settings

        return build_sme_labels_sensor(load_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
