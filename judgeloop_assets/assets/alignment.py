import dagster as dg

from judgeloop.judging import alignment, gate, judges
from judgeloop.model_calls import providers, usage
from judgeloop.sme_labels import experts, labels
from judgeloop.run_names import REALIGN_POOL
from judgeloop_assets.metadata import agreement_metadata, carry_last_result, confusion_table, interval_table, move_to_table, usage_metadata
from judgeloop_assets.failures import expected_failures
from judgeloop_assets.resources import JudgeloopConfig
from sensors.label_metadata import rejections_table

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
    "heldout_pairs_after", "exact_agreement_human_ceiling",
    "mae_before", "traces_alignment", "heldout_unscored_before", "heldout_unscored_after",
    "llm_align_embedding_calls", "llm_measure_judge_calls", "llm_measure_embedding_calls", "judge_scores_reused",
    "human_ceiling_traces", "human_ceiling_reviewer_pairs", "human_ceiling_statistic",
}
# Metadata a no-change run measures itself (on the current labels) instead of carrying it over.
MEASURED_NOW = (
    "kappa_", "exact_agreement_", "heldout_pairs_", "mae_", "confusion_matrix_", "invalid_judge_answers_",
    "human_ceiling", "labels_", "traces_", "label_rule", "agreement_chart", "warning", "measured_on", "agreement_measured",
)


@dg.asset(
    # Nothing else runs before it in a re-alignment: live_agreement is measured in its own run
    # afterwards (sensors/live_agreement_sensor.py).
    deps=[sme_labels],
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
                "Blocks a new judge whose held-out kappa measures lower than the judge in use's (by more "
                "than gate_margin, default 0) or that was not measured; rules in judgeloop.judging.gate."
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
        # The label range the sensor or the label path handed this run; by hand: every label.
        up_to = labels.decode_key(context.run.tags.get(labels.LABELS_UP_TO_TAG))
        result = alignment.align(settings, experiment_id, progress=context.log.info, up_to=up_to)
    decision = gate.decide(result, settings.gate_margin, settings.min_scored_heldout)
    passed, reason = decision.passed, decision.reason
    if result.new_version is not None:
        # The decision is kept with the version, so `judgeloop status` can say why it is or is not in use.
        judges.record_decision(experiment_id, result.new_version, decision.as_dict())
    # Promotion happens here, after the gate decided, never by "latest version".
    if passed and result.new_version is not None:
        judges.promote(experiment_id, result.new_version)
    promoted = judges.promoted_version(experiment_id)
    context.log.info(f"gate {'passed' if passed else 'FAILED'}: {reason}; judge in use: v{promoted}")
    # The review queue follows the judge now in use: topped up after the labels this run took,
    # its pending window re-ranked when a new judge was promoted.
    # A queue that cannot be refreshed now is refreshed by the next run: it never fails this one.
    newly_promoted = bool(passed and result.new_version is not None)
    window, queue_problem = None, None
    try:
        window = judgeloop.workspace().refresh_queue(experiment_id, rerank=newly_promoted)
    except Exception as exc:
        queue_problem = f"{type(exc).__name__}: {exc}"[:300]
        context.log.warning(f"review queue not refreshed: {queue_problem}")

    metadata = decision_metadata(settings, result, decision, promoted)
    metadata.update(reference_chart(settings, experiment_id, result, promoted))
    metadata.update(
        {
            "models": providers.models_label(settings),
            "judge_name": result.judge_name,
            "previous_version": result.previous_version,
            "label_rule": result.label_rule,
            "labels_alignment": result.alignment_labels,
            # What MemAlign learned from: one consensus label per alignment trace, none discarded.
            "labels_used_alignment": result.alignment_traces,
            "labels_heldout": result.heldout_labels,
            "labels_total": result.alignment_labels + result.heldout_labels,
            "traces_alignment": result.alignment_traces,
            "traces_heldout": result.heldout_traces,
            "traces_heldout_sample": result.heldout_sample,
            "labels_rejected": len(result.rejected),
            "guidelines": dg.MetadataValue.md("\n".join(f"- {g}" for g in result.guidelines) or "_none yet_"),
            "guideline_count": len(result.guidelines),
            # Calls this run made; stored scores it read back cost nothing and are counted apart.
            "llm_calls": sum(result.llm_calls.values()),
            **{f"llm_{k}": v for k, v in result.llm_calls.items()},
            "judge_scores_reused": result.scores_reused,
            **({"queue_items_added": len(window.added), "queue_items_reranked_out": len(window.removed)} if window else {}),
            **({"queue_not_refreshed": queue_problem} if queue_problem else {}),
            "mlflow_judges": dg.MetadataValue.url(f"{judgeloop.ui_url(settings)}/#/experiments/{experiment_id}/judges"),
        }
    )
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
        metadata.update(agreement_metadata("before", result.before))
        metadata.update(agreement_metadata("after", result.after))
        metadata["confusion_matrix_after"] = confusion_table(result.after)
        metadata["confusion_matrix_before"] = confusion_table(result.before)
    for which, count in result.invalid_answers.items():
        # Answers off the scale (a 9 on a 1-4 judge) are never scored; how many there were.
        metadata[f"invalid_judge_answers_{which}"] = count
    if result.human_ceiling is not None:
        ceiling = result.human_ceiling
        metadata["kappa_human_ceiling"] = float(ceiling.kappa)
        metadata["exact_agreement_human_ceiling"] = float(ceiling.estimates["exact"].value)
        metadata["human_ceiling_statistic"] = experts.CEILING_STATISTIC
        metadata["human_ceiling_traces"] = ceiling.traces
        metadata["human_ceiling_reviewer_pairs"] = ceiling.reviewer_pairs
    if result.rejected:
        metadata["rejected_labels"] = rejections_table(result.rejected)
    if result.comparison is not None:
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
        # This run's decision and its measure of the judge in use on the current labels come
        # first and are its own; only the rest (the last change's details) is carried over.
        # Whether the last change was promoted (and which version) is carried over; the gate's sentence is this run's.
        now = decision_metadata(settings, result, decision, promoted)
        carried = {k: metadata[k] for k in ("promoted", "judge_version") if k in metadata}
        rest = {k: v for k, v in metadata.items() if k not in measured_now and k not in now}
        metadata = {**now, **carried, **measured_now, **rest}
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name=GATE,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        # The sentence is the check's description: the UI shows it where the check is listed.
        description=reason,
        metadata={
            "reason": reason,
            "case": decision.case,
            "kappa_before": _number(result.before.kappa if result.before else None),
            "kappa_after": _number(result.after.kappa if result.after else None),
            "measured_on": measured_on(result),
            "margin": settings.gate_margin,
        },
    )


def _number(value):
    """A kappa as metadata: a float, or null (said as such) when the judge was not measured."""
    return dg.MetadataValue.null() if value is None else float(value)


def measured_on(result) -> str:
    """What the judges' numbers stand on, never the sample passed off as the whole split."""
    comparison = result.comparison
    measured = comparison.traces if comparison is not None else result.heldout_sample
    if result.current is not None:
        measured = result.current.n
    return gate.traces_text(measured, result.heldout_traces)


def decision_metadata(settings, result, decision, promoted) -> dict:
    """What a person opening the asset looks for first: did the judge change, why, on what."""
    kappa = {}
    if result.before is not None:
        kappa = {"kappa_in_use": _number(result.before.kappa), "kappa_candidate": _number(result.after.kappa)}
    elif result.current is not None:
        kappa = {"kappa_in_use": _number(result.current.kappa)}
    gate_text = decision.reason
    if result.new_version is None:
        gate_text = f"nothing to promote: {decision.reason}; v{promoted} stays in use"
    return {
        "promoted": bool(decision.passed and result.new_version is not None),
        "gate": gate_text,
        "gate_case": decision.case,
        "promoted_version": promoted,
        "judge_version": result.new_version or result.previous_version,
        **kappa,
        "measured_on": measured_on(result),
    }


def reference_chart(settings, experiment_id: str, result, promoted: int | None) -> dict:
    """The one picture to read first: every promoted version on today's held-out labels (stored
    scores, no judge call), with intervals and the experts' agreement as a band."""
    from judgeloop.judging import charts, reference

    measured = reference.measure(
        settings, experiment_id, result.used_labels, judges.all_lineages(experiment_id), promoted,
        _base_version(experiment_id),
    )
    points = [(f"v{v.version}{' (in use)' if v.in_use else ''}", v.kappa) for v in measured.versions]
    ceiling = measured.ceiling.estimates["kappa"] if measured.ceiling else None
    title = f"{result.judge_name}: every promoted version on today's {measured.traces} of {measured.heldout_traces} held-out traces"
    note = measured.warning or "per-version numbers on the held-out split of their day are in the details"
    svg = charts.history_svg(title, points, ceiling, note)
    path = charts.write(svg, settings.resolved_home / "charts" / f"{result.judge_name}-agreement.svg")
    data = {
        "agreement_chart": dg.MetadataValue.md(charts.markdown_image(svg, "agreement of every promoted version")),
        "agreement_chart_file": dg.MetadataValue.path(str(path)),
    }
    if measured.warning:
        data["warning"] = measured.warning
    return data


def _base_version(experiment_id: str) -> int | None:
    try:
        return judges.base_version(experiment_id)
    except LookupError:
        return None
