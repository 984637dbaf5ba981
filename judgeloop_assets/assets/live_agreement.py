import dagster as dg

from judgeloop.judging import live_agreement
from judgeloop.model_calls import usage
from judgeloop_assets.metadata import usage_metadata
from judgeloop_assets.resources import JudgeloopConfig

CHECK = "live_agreement_above_threshold"


@dg.asset(
    name="live_agreement",
    deps=["sme_labels"],
    group_name="alignment",
    kinds={"mlflow"},
    description=(
        "The agreement of the judge in use when the SME labels arrived with them (per batch) and with the "
        "newest live_agreement_window labels (rolling). Its own run (job measure_live_agreement), launched "
        "after each re-alignment finishes: it never delays or blocks a promotion."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="live_agreement",
            blocking=False,
            description="Warns when the rolling live kappa falls below live_agreement_threshold, naming reviewers and traces.",
        )
    ],
)
def live_agreement_asset(context: dg.AssetExecutionContext, judgeloop: JudgeloopConfig):
    settings, experiment_id = judgeloop.connect()
    with usage.record(settings) as ledger:
        live = live_agreement.measure(settings, experiment_id)
    batch, rolling = live.batch_agreement, live.rolling_agreement
    context.log.info(
        f"judge v{live.judge_version}: batch of {batch.n} labels kappa {batch.kappa:.3f}, rolling {rolling.n} "
        f"labels kappa {rolling.kappa:.3f}; {live.scored.summary()}"
    )
    # A few numbers worth a plot over time; the rest goes into tables.
    metadata = {
        "judge_version": live.judge_version,
        "live_labels_batch": batch.n,
        "live_labels_rolling": rolling.n,
        "live_kappa_rolling": float(rolling.kappa),
        "live_exact_agreement_rolling": float(rolling.exact),
        "live_judge_calls": live.scored.paid,
        "live_unscored_labels": live.unscored,
        "rolling_intervals": _intervals_md(live),
        "disagreements": _pairs_table(live.disagreements()[:50]),
        **usage_metadata(ledger),
    }
    if batch.n:
        metadata["live_kappa_batch"] = float(batch.kappa)
        metadata["live_exact_agreement_batch"] = float(batch.exact)
    yield dg.MaterializeResult(metadata=metadata)
    warning = live_agreement.warning(settings, live)
    yield dg.AssetCheckResult(
        check_name=CHECK,
        passed=warning is None,
        severity=dg.AssetCheckSeverity.WARN,
        description=warning or (
            f"rolling kappa {rolling.kappa:.3f} on {rolling.n} labels "
            + ("(too few labels to warn)" if rolling.n < settings.live_agreement_min_labels else f">= {settings.live_agreement_threshold:.3f}")
        ),
        metadata={
            "live_kappa_rolling": float(rolling.kappa),
            "threshold": settings.live_agreement_threshold,
            "reviewers_disagreeing": ", ".join(sorted({str(p.reviewer) for p in live.disagreements()})) or "none",
        },
    )


def _intervals_md(live) -> dg.MetadataValue:
    rows = ["| metric | rolling (95% interval) |", "| --- | --- |"]
    rows += [f"| {metric} | {estimate.text()} |" for metric, estimate in live.rolling_intervals.items()]
    return dg.MetadataValue.md("\n".join(rows))


def _pairs_table(pairs) -> dg.MetadataValue:
    columns = [dg.TableColumn(name, "string") for name in ("trace_id", "reviewer", "sme", "judge")]
    records = [
        dg.TableRecord({"trace_id": p.trace_id, "reviewer": str(p.reviewer), "sme": str(p.human), "judge": str(p.judge)})
        for p in pairs
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))
