import dagster as dg

from judgeloop.judging import judges
from judgeloop.model_calls import providers
from judgeloop_assets.failures import expected_failures
from judgeloop_assets.resources import JudgeloopConfig


@dg.asset(group_name="judge", kinds={"mlflow"}, description="The LLM judge as configured, registered as an MLflow scorer version.")
@expected_failures
def base_judge(context: dg.AssetExecutionContext, judgeloop: JudgeloopConfig) -> dg.MaterializeResult:
    settings = judgeloop.settings()
    # Checked before connecting, so a missing provider writes nothing.
    model = providers.require_model(settings, "judge")
    judges.full_instructions(settings)
    settings, experiment_id = judgeloop.connect()
    registered = judges.ensure_base_judge(settings, experiment_id, model)
    context.log.info(
        f"judge {registered.name} version {registered.version} ({'new' if registered.created else 'unchanged'})"
    )
    return dg.MaterializeResult(
        metadata={
            "judge_name": registered.name,
            "judge_version": registered.version,
            "new_version": registered.created,
            "feedback_type": settings.feedback_type.value,
            "model_uri": model,
            "models": providers.models_label(settings),
            "instructions": dg.MetadataValue.md(judges.full_instructions(settings)),
            "experiment_id": experiment_id,
            "mlflow_experiment": dg.MetadataValue.url(f"{judgeloop.ui_url(settings)}/#/experiments/{experiment_id}"),
        }
    )
