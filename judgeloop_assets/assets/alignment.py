import dagster as dg

from judgeloop import alignment, experts, gate, judges, providers, usage
from judgeloop_assets.metadata import agreement_metadata, carry_last_result, confusion_table, interval_table, move_to_table, rejections_table, usage_metadata
from judgeloop_assets.names import REALIGN_POOL
from judgeloop_assets.failures import expected_failures
from judgeloop_assets.resources import JudgeloopConfig

sme_labels = dg.AssetSpec(
    "sme_labels",
    deps=["labeling_session"],
    group_name="alignment",
    kinds={"mlflow"},
    description=(
        "The SMEs' labels in MLflow: HUMAN feedback named like the judge on the review queue's "
        "traces. Written in the MLflow UI (or imported); reported by sme_labels_sensor."
    ),
)

GATE = "agreement_gate"
DETAIL_KEYS = {
    "heldout_pairs_after", "heldout_pairs_human_ceiling", "exact_agreement_human_ceiling",
    "mae_before", "mae_human_ceiling", "traces_alignment", "heldout_unscored_before", "heldout_unscored_after",
    "llm_align_embedding_calls", "llm_measure_judge_calls", "llm_measure_judge_scores_reused", "llm_measure_embedding_calls",
}
# Metadata a no-change run measures itself (on the current labels) instead of carrying it over.
MEASURED_NOW = (
    "kappa_", "exact_agreement_", "heldout_pairs_", "mae_", "confusion_matrix_", "invalid_judge_answers_",
    "human_ceiling", "agreement_measured", "labels_", "traces_", "label_rule",
)


@dg.asset(
    # live_agreement first: it measures the judge in use before this run may replace it.
    deps=[sme_labels, "live_agreement"],
    group_name="alignment",
    pool=REALIGN_POOL,
    kinds={"mlflow"},
    description="The judge re-aligned to the SMEs with MemAlign, promoted only if it agrees with them at least as well.",
    check_specs=[
        dg.AssetCheckSpec(
            GATE,
            asset="aligned_judge",
            blocking=True,
            description=(
                "Blocks a new judge that is worse with confidence (the 95% interval of its held-out kappa "
                "difference lies below -gate_margin) or that was not measured; rules in judgeloop.gate."
            ),
        )
    ],
)
@expected_failures
def aligned_judge(context: dg.AssetExecutionContext, judgeloop: JudgeloopConfig):
    settings = judgeloop.settings()
    providers.require_models(settings, "judge", "reflection", "embeddings")
    settings, experiment_id = judgeloop.connect()
    with usage.record(settings) as ledger:
        result = alignment.align(settings, experiment_id, progress=context.log.info)
    decision = gate.decide(result, settings.gate_margin, settings.min_scored_heldout)
    passed, reason = decision.passed, decision.reason
    # Promotion happens here, after the gate decided, never by "latest version".
    if passed and result.new_version is not None:
        judges.promote(experiment_id, result.new_version)
    promoted = judges.promoted_version(experiment_id)
    context.log.info(f"gate {'passed' if passed else 'FAILED'}: {reason}; judge in use: v{promoted}")

    metadata = {
        "models": providers.models_label(settings),
        "judge_name": result.judge_name,
        "judge_version": result.new_version or result.previous_version,
        "previous_version": result.previous_version,
        "promoted_version": promoted,
        "promoted": passed and result.new_version is not None,
        "gate": reason,
        "gate_case": decision.case,
        "traces_heldout_sample": result.heldout_sample,
        "label_rule": result.label_rule,
        "labels_alignment": result.alignment_labels,
        # What MemAlign learned from: one consensus label per alignment trace, none discarded.
        "labels_used_alignment": result.alignment_traces,
        "labels_heldout": result.heldout_labels,
        "labels_total": result.alignment_labels + result.heldout_labels,
        "traces_alignment": result.alignment_traces,
        "traces_heldout": result.heldout_traces,
        "labels_rejected": len(result.rejected),
        "guidelines": dg.MetadataValue.md("\n".join(f"- {g}" for g in result.guidelines) or "_none yet_"),
        "guideline_count": len(result.guidelines),
        "llm_calls": sum(result.llm_calls.values()),
        **{f"llm_{k}": v for k, v in result.llm_calls.items()},
        "mlflow_judges": dg.MetadataValue.url(f"{judgeloop.ui_url(settings)}/#/experiments/{experiment_id}/judges"),
    }
    metadata.update(usage_metadata(ledger))
    if result.skipped_reason:
        metadata["skipped"] = result.skipped_reason
    if result.current is not None:
        # The judge in use did not change; its agreement is measured again on the held-out
        # labels as they are now, so this block never mixes old and new labels.
        metadata["agreement_measured"] = f"judge v{result.previous_version} re-measured on the current held-out labels"
        metadata.update(agreement_metadata("before", result.current))
        metadata.update(agreement_metadata("after", result.current))
        metadata["confusion_matrix_after"] = confusion_table(result.current)
    if result.before is not None:
        metadata["agreement_measured"] = (
            f"judge v{result.previous_version} and v{result.new_version} (as loaded from the registry) on the held-out labels"
        )
        metadata.update(agreement_metadata("before", result.before))
        metadata.update(agreement_metadata("after", result.after))
        metadata["confusion_matrix_after"] = confusion_table(result.after)
        metadata["confusion_matrix_before"] = confusion_table(result.before)
    for which, count in result.invalid_answers.items():
        # Answers off the scale (a 9 on a 1-4 judge) are never scored; how many there were.
        metadata[f"invalid_judge_answers_{which}"] = count
    if result.human_ceiling is not None:
        metadata.update(agreement_metadata("human_ceiling", result.human_ceiling.agreement))
        metadata["human_ceiling_statistic"] = experts.CEILING_STATISTIC
        metadata["human_ceiling_reviewer_pairs"] = result.human_ceiling.reviewer_pairs
    if result.rejected:
        metadata["rejected_labels"] = rejections_table(result.rejected)
    if result.comparison is not None:
        metadata.update(agreement_chart(settings, result))
        metadata["agreement_intervals"] = interval_table(result.comparison, result.previous_version, result.new_version)
        diff = result.comparison.difference["kappa"]
        if diff.has_interval:
            metadata["kappa_difference_low"] = float(diff.low)
            metadata["kappa_difference_high"] = float(diff.high)
    for side, scored in (("before", result.before_scores), ("after", result.after_scores)):
        if scored is not None:
            metadata[f"heldout_unscored_{side}"] = scored.unscored
    # The UI plots every number: keep agreement, labels and cost as plots, the rest in one table.
    move_to_table(metadata, DETAIL_KEYS)
    if result.skipped_reason:
        measured_now = {k: v for k, v in metadata.items() if k.startswith(MEASURED_NOW)}
        metadata = carry_last_result(context, f"this run changed nothing: {result.skipped_reason}", metadata)
        # The judge in use was measured again on the current labels: those numbers are this
        # run's own, never the carried-over ones.
        metadata.update(measured_now)
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name=GATE,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "reason": reason,
            "case": decision.case,
            "kappa_before": result.before.kappa if result.before else float("nan"),
            "kappa_after": result.after.kappa if result.after else float("nan"),
            "margin": settings.gate_margin,
        },
    )


def agreement_chart(settings, result) -> dict:
    """One picture for this judge version: agreement before/after with intervals, and the SME ceiling."""
    from judgeloop import charts
    from judgeloop.intervals import Estimate

    comparison = result.comparison
    series = [(f"v{result.previous_version} (in use)", comparison.before), (f"v{result.new_version} (aligned)", comparison.after)]
    if result.human_ceiling is not None:
        ceiling = result.human_ceiling.agreement
        series.append(("SME vs SME", {"kappa": Estimate(ceiling.kappa), "exact": Estimate(ceiling.exact)}))
    svg = charts.agreement_svg(
        f"{result.judge_name} v{result.new_version}: held-out agreement on {comparison.traces} traces (95% intervals)", series
    )
    path = charts.write(svg, settings.resolved_home / "charts" / f"{result.judge_name}-v{result.new_version}.svg")
    return {
        "agreement_chart": dg.MetadataValue.md(charts.markdown_image(svg, "agreement before and after")),
        "agreement_chart_file": dg.MetadataValue.path(str(path)),
    }
