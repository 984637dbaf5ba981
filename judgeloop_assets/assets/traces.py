import dagster as dg

from judgeloop.judging import judges
from judgeloop.model_calls import llm_limits, providers
from judgeloop.tracing import traces
from judgeloop.tracing.questions import load_questions
from judgeloop_assets.failures import expected_failures
from judgeloop_assets.resources import JudgeloopConfig


@dg.asset(
    group_name="judge",
    deps=["base_judge"],
    kinds={"mlflow"},
    description="Traces the agent answered AND the base judge scored, tagged eval=complete in MLflow.",
)
@expected_failures
def tagged_traces(context: dg.AssetExecutionContext, judgeloop: JudgeloopConfig) -> dg.MaterializeResult:
    settings = judgeloop.settings()
    providers.require_model(settings, "judge")
    agent = traces.load_agent(settings.agent) if settings.agent else None
    records = None
    if agent is not None:
        if settings.questions_path is None:
            raise ValueError("JUDGELOOP_AGENT is set but JUDGELOOP_QUESTIONS_PATH is not: the agent needs questions.")
        records = load_questions(settings.questions_path)  # validated before anything runs
    settings, experiment_id = judgeloop.connect()
    base_version = judges.base_version(experiment_id)
    judge = judges.load(experiment_id, settings.judge_name, base_version)
    report = traces.evaluate_and_tag(
        experiment_id, judge, records=records, agent=agent, progress=context.log.info, judge_version=base_version,
        settings=settings,
    )
    if report.evaluated and report.judge_errors == report.evaluated - report.agent_errors > 0:
        # Not one score: the provider is down, rate-limiting or answering nonsense. Say which.
        raise llm_limits.ProviderFailure(
            llm_limits.failure_message(settings, "judge", report.first_errors[0] if report.first_errors else "no score")
        )
    score_table = [
        dg.TableRecord({"score": score, "traces": count}) for score, count in sorted(report.scores.items())
    ]
    metadata = {
        "traces_evaluated": report.evaluated,
        "traces_tagged": report.tagged,
        "traces_tagged_total": report.already_tagged + report.tagged,
        "agent_errors": report.agent_errors,
        "judge_errors": report.judge_errors,
        "first_errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in report.first_errors) or "none"),
        "score_distribution": dg.MetadataValue.table(
            score_table,
            schema=dg.TableSchema(columns=[dg.TableColumn("score", "string"), dg.TableColumn("traces", "int")]),
        ),
        "judge_version": base_version,
    }
    if report.run_id:
        metadata["mlflow_run"] = dg.MetadataValue.url(
            f"{judgeloop.ui_url(settings)}/#/experiments/{experiment_id}/runs/{report.run_id}"
        )
    return dg.MaterializeResult(metadata=metadata)
