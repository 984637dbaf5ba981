"""Watches MLflow for new or edited SME labels and re-aligns the judge when enough arrived."""

import dagster as dg

from judgeloop.settings import Settings
from judgeloop_assets.names import REALIGN_JOB, run_limit_tags
from judgeloop_assets.resources import JudgeloopConfig

realign_job = dg.define_asset_job(
    REALIGN_JOB,
    selection=dg.AssetSelection.assets("aligned_judge").downstream(),
    description="Re-align the judge to the SMEs and refresh everything downstream of it.",
    tags=run_limit_tags(),
)


def build_sme_labels_sensor(settings: Settings) -> dg.SensorDefinition:
    """The sensor, ticking at the deployment's interval (read once, when the code location loads)."""
    return dg.sensor(
        name="sme_labels_sensor",
        job=realign_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        description="Counts usable SME labels changed since its cursor; at label_threshold it reports sme_labels and re-aligns.",
    )(count_new_labels)


def count_new_labels(context: dg.SensorEvaluationContext, judgeloop: JudgeloopConfig):
    from judgeloop import labels

    settings, experiment_id = judgeloop.connect()
    cursor = labels.Cursor.decode(context.cursor)
    batch = labels.changed_since(settings, experiment_id, cursor)
    fresh, rejected = labels.usable(settings, batch.labels)
    threshold = settings.label_threshold
    if len(fresh) < threshold:
        # The cursor stays put: waiting labels keep counting toward the next batch.
        return dg.SkipReason(
            f"{len(fresh)} new SME label(s) waiting, {threshold} needed to re-align"
            + (f" ({len(rejected)} unusable label(s) ignored)" if rejected else "")
        )
    from judgeloop_assets.metadata import rejections_table

    run_key = f"sme-labels-{batch.cursor.updated_ms}-{batch.cursor.assessment_id}"
    context.log.info(f"{len(fresh)} new SME labels (read {batch.rows_read} rows); requesting {run_key}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"judgeloop/new_labels": str(len(fresh))})],
        asset_events=[
            dg.AssetMaterialization(
                "sme_labels",
                description="New or edited SME labels in MLflow",
                metadata={
                    "new_labels": len(fresh),
                    "unusable_labels": len(rejected),
                    "unusable_label_details": rejections_table(rejected),
                    "reviewers": ", ".join(sorted({str(label.reviewer) for label in fresh})),
                    "newest_label_ms": batch.cursor.updated_ms,
                    "experiment_id": experiment_id,
                },
            )
        ],
        cursor=batch.cursor.encode(),
    )
