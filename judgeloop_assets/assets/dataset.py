import dagster as dg

from judgeloop.tracing import datasets, traces
from judgeloop_assets.failures import expected_failures
from judgeloop_assets.resources import JudgeloopConfig


@dg.asset(
    group_name="judge",
    deps=["tagged_traces"],
    kinds={"mlflow"},
    description="A persistent MLflow GenAI evaluation dataset merged from the tagged traces.",
)
@expected_failures
def eval_dataset(context: dg.AssetExecutionContext, judgeloop: JudgeloopConfig) -> dg.MaterializeResult:
    settings, experiment_id = judgeloop.connect()
    trace_ids = traces.tagged_trace_ids(experiment_id)
    context.log.info(f"{len(trace_ids)} tagged traces to merge")
    place = judgeloop.workspace()
    report = datasets.merge_traces(place, experiment_id, trace_ids, progress=context.log.info, settings=settings)
    with_expectations = 0
    if settings.expectations_path:
        expected = datasets.load_expectations(settings.expectations_path)
        with_expectations = datasets.set_expectations(place.dataset(experiment_id), expected)
        context.log.info(f"attached expectations to {with_expectations} records from {settings.expectations_path}")
    records = datasets.load_records(place.dataset(experiment_id))
    return dg.MaterializeResult(
        metadata={
            "dataset_id": report.dataset_id,
            "dataset_name": report.name,
            "record_count": report.record_count,
            "records_added": report.added,
            "records_with_expectations": sum(1 for r in records if r["expectations"]),
            "expectations_attached": with_expectations,
            "source_traces": len(trace_ids),
            "mlflow_datasets": dg.MetadataValue.url(
                f"{judgeloop.ui_url(settings)}/#/experiments/{experiment_id}/datasets"
            ),
        }
    )
