import dagster as dg

from judgeloop import datasets, traces
from judgeloop_assets.resources import JudgeloopConfig


@dg.asset(
    group_name="judge",
    deps=["tagged_traces"],
    kinds={"mlflow"},
    description="A persistent MLflow GenAI evaluation dataset merged from the tagged traces.",
)
def eval_dataset(context: dg.AssetExecutionContext, judgeloop: JudgeloopConfig) -> dg.MaterializeResult:
    settings, experiment_id = judgeloop.connect()
    trace_ids = traces.tagged_trace_ids(experiment_id)
    context.log.info(f"{len(trace_ids)} tagged traces to merge")
    report = datasets.merge_traces(experiment_id, f"{settings.experiment_name}-eval", trace_ids, progress=context.log.info)
    return dg.MaterializeResult(
        metadata={
            "dataset_id": report.dataset_id,
            "dataset_name": report.name,
            "record_count": report.record_count,
            "records_added": report.added,
            "source_traces": len(trace_ids),
            "mlflow_datasets": dg.MetadataValue.url(
                f"{judgeloop.ui_url(settings)}/#/experiments/{experiment_id}/datasets"
            ),
        }
    )
