import dagster as dg

from judgeloop.model_calls import providers, usage
from judgeloop.prompt_optimization import optimization, prompts
from judgeloop_assets.metadata import carry_last_result, usage_metadata
from judgeloop.run_names import REALIGN_POOL
from judgeloop_assets.failures import expected_failures
from judgeloop_assets.resources import JudgeloopConfig

PROMOTION_CHECK = "prompt_beats_production"


@dg.asset(
    group_name="agent",
    kinds={"mlflow"},
    description="The agent's starting system prompt in the MLflow prompt registry, with a production alias.",
)
@expected_failures
def agent_prompt(context: dg.AssetExecutionContext, judgeloop: JudgeloopConfig) -> dg.MaterializeResult:
    settings, _ = judgeloop.connect()
    state = prompts.ensure_registered(settings)
    context.log.info(f"prompt {state.name} v{state.version} ({'new' if state.created else 'unchanged'}), production v{state.production_version}")
    return dg.MaterializeResult(
        metadata={
            "prompt_name": state.name,
            "prompt_version": state.version,
            "new_version": state.created,
            "production_version": state.production_version,
            "production_alias": settings.production_alias,
            "production_prompt": dg.MetadataValue.md(f"```\n{state.template}\n```"),
            "prompt_uri": f"prompts:/{state.name}@{settings.production_alias}",
            "mlflow_prompts": dg.MetadataValue.url(f"{judgeloop.ui_url(settings)}/#/prompts/{state.name}"),
        }
    )


@dg.asset(
    deps=["aligned_judge", "eval_dataset", "agent_prompt"],
    group_name="agent",
    pool=REALIGN_POOL,
    kinds={"mlflow"},
    description="The agent prompt improved by GEPA with the promoted aligned judge; promoted only if it scores higher.",
    check_specs=[
        dg.AssetCheckSpec(
            PROMOTION_CHECK,
            asset="optimized_prompt",
            blocking=True,
            description="Records whether the new prompt beat production on held-out records (warns when it did not).",
        )
    ],
)
@expected_failures
def optimized_prompt(context: dg.AssetExecutionContext, judgeloop: JudgeloopConfig):
    settings = judgeloop.settings()
    providers.require_models(settings, "judge", "reflection", *([] if settings.agent else ["agent"]))
    settings, experiment_id = judgeloop.connect()
    with usage.record(settings) as ledger:
        result = optimization.optimize(settings, experiment_id, progress=context.log.info)
    metadata = {
        "judge_version": result.judge_version,
        "dataset_id": result.dataset_id,
        "production_version_before": result.production_version,
        "train_records": result.train_records,
        "heldout_records": result.heldout_records,
        "records_skipped_without_expectations": result.skipped_records,
        "metric_calls_budget": result.metric_calls_budget,
        **usage_metadata(ledger),
        "train_records_available": result.train_records_available,
        "gepa_rounds": result.gepa_rounds,
        "gepa_rounds_accepted": result.gepa_rounds_accepted,
    }
    if result.budget_warning:
        metadata["budget_warning"] = result.budget_warning
        context.log.warning(result.budget_warning)
    if result.skipped_reason:
        metadata["skipped"] = result.skipped_reason
        metadata = carry_last_result(context, f"this run changed nothing: {result.skipped_reason}", metadata)
        # The prompt in production now leads the page, whatever run last changed it.
        metadata = {"decision": result.skipped_reason, **production_metadata(settings),
                    **{k: v for k, v in metadata.items() if k not in ("decision", "prompt_in_production")}}
        yield dg.MaterializeResult(metadata=metadata)
        yield dg.AssetCheckResult(check_name=PROMOTION_CHECK, passed=True, metadata={"decision": result.skipped_reason})
        return
    if result.optimization_traces_url:
        metadata["optimizer_traces"] = dg.MetadataValue.url(result.optimization_traces_url)
    if result.new_version is None:  # GEPA kept the production template: nothing was registered
        metadata = {
            "promoted": False, "decision": result.decision, **production_metadata(settings),
            "diff_vs_production": dg.MetadataValue.md("_GEPA proposed no change to the prompt in production_"),
            **metadata, "metric_calls_spent": result.metric_calls_spent,
        }
        yield dg.MaterializeResult(metadata=metadata)
        yield dg.AssetCheckResult(
            check_name=PROMOTION_CHECK, passed=False, severity=dg.AssetCheckSeverity.WARN,
            metadata={"decision": result.decision},
        )
        return
    # Decision first: promoted or not and why, the prompt in production, the candidate's diff to it.
    metadata = {
        "promoted": result.promoted,
        "decision": result.decision,
        **production_metadata(settings),
        "diff_vs_production": dg.MetadataValue.md(f"```diff\n{result.diff or '(no change)'}\n```"),
        **metadata,
    }
    metadata.update(
        {
            "prompt_version": result.new_version,
            "initial_score": float(result.initial_score or 0.0),
            "final_score": float(result.final_score or 0.0),
            "heldout_score_production": float(result.heldout_production_score),
            "heldout_score_new": float(result.heldout_new_score),
            "llm_calls": sum(result.llm_calls.values()),
            "metric_calls_spent": result.metric_calls_spent,
            "new_prompt": dg.MetadataValue.md(f"```\n{result.new_template}\n```"),
            "mlflow_prompts": dg.MetadataValue.url(f"{judgeloop.ui_url(settings)}/#/prompts/{prompts.name(settings)}"),
        }
    )
    yield dg.MaterializeResult(metadata=metadata)
    # A prompt that did not improve is a normal outcome, not a broken run: the check warns.
    yield dg.AssetCheckResult(
        check_name=PROMOTION_CHECK,
        passed=result.promoted,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"decision": result.decision},
    )


def production_metadata(settings) -> dict:
    """The prompt in production as this run leaves it (version and text)."""
    prompt = prompts.production(settings)
    if prompt is None:
        return {"prompt_in_production": dg.MetadataValue.md("_no prompt in production yet_")}
    return {"prompt_in_production": dg.MetadataValue.md(f"v{prompt.version}:\n```\n{prompt.template}\n```")}
