import dagster as dg

from judgeloop.sme_labels import labeling, labels, queue_order, review_progress
from judgeloop.tracing import traces
from judgeloop_assets import metadata
from judgeloop_assets.failures import expected_failures
from judgeloop_assets.resources import JudgeloopConfig


@dg.asset(
    group_name="judge",
    deps=["eval_dataset"],
    kinds={"mlflow"},
    description="Label schema (named like the judge) and review queue where SMEs label the dataset's traces.",
    check_specs=[
        dg.AssetCheckSpec(
            "schema_matches_judge",
            asset="labeling_session",
            description="The label schema's name equals the judge's name and its input fits the feedback type.",
        )
    ],
)
@expected_failures
def labeling_session(context: dg.AssetExecutionContext, judgeloop: JudgeloopConfig):
    settings, experiment_id = judgeloop.connect()
    trace_ids = traces.tagged_trace_ids(experiment_id)
    place = judgeloop.workspace()
    report = place.open_labeling(experiment_id, trace_ids, judgeloop.ui_url(settings))
    context.log.info(f"queue {report.queue_name}: {report.items_added} items added, {report.pending} pending")
    used, rejected = labels.current_labels(settings, experiment_id)
    # The queue holds every tagged trace: progress is counted over them.
    review = review_progress.report(settings, used, rejected, trace_ids)
    yield dg.MaterializeResult(
        metadata={
            "labeling_url": dg.MetadataValue.url(report.url),
            "schema_name": report.schema_name,
            "schema_id": report.schema_id,
            "queue_id": report.queue_id,
            "queue_name": report.queue_name,
            "items_added": report.items_added,
            "items_pending": report.pending,
            "items_complete": report.complete,
            # The order traces join the queue in, and how many wait at a time (topped up, re-ranked
            # after a promotion); a Databricks queue holds every trace (window 0).
            "queue_order": report.order_rule or queue_order.order_rule(queue_order.INSERTION, settings.heldout_fraction),
            "queue_window": report.window,
            "reviewers": ", ".join(report.reviewers) or "anyone with access",
            "experiment_id": experiment_id,
            "rubric_on_form": labeling.instruction(settings),
            "reviewer_progress": metadata.reviewer_table(review),
            "reviewer_agreement": metadata.reviewer_agreement_table(review),
        }
    )
    names = place.check_label_names(experiment_id)
    yield dg.AssetCheckResult(check_name="schema_matches_judge", passed=names.passed, metadata=names.metadata)
