"""Turns core results into Dagster metadata people would rather see than read."""

import dagster as dg

from judgeloop.judging.agreement import Agreement


def agreement_metadata(prefix: str, result: Agreement) -> dict:
    # Plain floats, so Dagster plots each across materializations.
    # A judge scored on no trace is unmeasured: null, never a kappa of 0.
    data = {
        f"kappa_{prefix}": dg.MetadataValue.null() if result.kappa is None else float(result.kappa),
        f"exact_agreement_{prefix}": dg.MetadataValue.null() if result.exact is None else float(result.exact),
        f"heldout_pairs_{prefix}": result.n,
    }
    if result.mae is not None:
        data[f"mae_{prefix}"] = float(result.mae)
    return data


def confusion_table(result: Agreement) -> dg.MetadataValue:
    columns = [dg.TableColumn("sme", "string")] + [dg.TableColumn(f"judge={v}", "int") for v in result.labels]
    records = [
        dg.TableRecord({"sme": str(value), **{f"judge={v}": int(n) for v, n in zip(result.labels, row)}})
        for value, row in zip(result.labels, result.confusion)
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


def reviewer_table(review) -> dg.MetadataValue:
    columns = [dg.TableColumn("reviewer", "string"), dg.TableColumn("labelled", "int"),
               dg.TableColumn("queued", "int"), dg.TableColumn("rejected", "int")]
    records = [
        dg.TableRecord({"reviewer": r.reviewer, "labelled": r.labelled, "queued": r.queued, "rejected": r.rejected})
        for r in review.reviewers
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


def reviewer_agreement_table(review) -> dg.MetadataValue:
    columns = [dg.TableColumn("reviewers", "string"), dg.TableColumn("shared_traces", "int"),
               dg.TableColumn("kappa", "float"), dg.TableColumn("exact", "float")]
    records = [
        dg.TableRecord({"reviewers": f"{p.first} ~ {p.second}", "shared_traces": p.shared_traces,
                        "kappa": round(p.kappa, 3), "exact": round(p.exact, 3)})
        for p in review.pairs
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


NO_CHANGE = "no_change"


def carry_last_result(context, reason: str, current: dict) -> dict:
    """Metadata for a run that changed nothing: the last real result's, marked as carried over.

    A no-op materialization becomes the asset's latest; with only its own metadata it would
    read as "not promoted, no diff" and hide the result that is actually in use. So it repeats
    the newest materialization that did change something, says which run produced it, and
    states plainly that this run changed nothing.
    """
    key = context.asset_key
    records = context.instance.fetch_materializations(key, limit=50).records
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or NO_CHANGE in materialization.metadata:
            continue
        carried = {k: v for k, v in materialization.metadata.items()}
        carried.update(
            {
                NO_CHANGE: reason,
                "result_from_run": record.run_id,
                "result_from": dg.MetadataValue.timestamp(record.timestamp),
            }
        )
        return carried
    return {**current, NO_CHANGE: reason}


def interval_table(comparison, before_version: int, after_version: int | None) -> dg.MetadataValue:
    """Each metric for both judges and their difference, with 95% paired bootstrap intervals."""
    columns = [dg.TableColumn(name, "string") for name in ("metric", f"v{before_version}", f"v{after_version}", "difference")]
    records = [
        dg.TableRecord(
            {
                "metric": metric,
                f"v{before_version}": comparison.before[metric].text(),
                f"v{after_version}": comparison.after[metric].text(),
                "difference": comparison.difference[metric].text(),
            }
        )
        for metric in comparison.difference
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


def usage_metadata(ledger) -> dict:
    """Tokens and estimated cost per LLM role: one table, plus the total cost when every price is known."""
    columns = [dg.TableColumn(name, "string") for name in ("role", "model", "calls", "input_tokens", "output_tokens", "cost_usd")]
    records = [dg.TableRecord({k: str(v) for k, v in row.items()}) for row in ledger.rows()]
    data = {"llm_usage": dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))}
    total = ledger.total_cost()
    # Unknown stays unknown: a missing price is not a cost of zero.
    data["llm_cost_usd"] = float(total) if total is not None else dg.MetadataValue.text("unknown")
    return data


def move_to_table(metadata: dict, keys, name: str = "details") -> dict:
    """Move single numbers that do not deserve a plot of their own into one table."""
    moved = {k: metadata.pop(k) for k in list(metadata) if k in keys}
    if moved:
        columns = [dg.TableColumn("name", "string"), dg.TableColumn("value", "string")]
        records = [dg.TableRecord({"name": k, "value": str(v)}) for k, v in moved.items()]
        metadata[name] = dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))
    return metadata
