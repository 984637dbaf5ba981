"""Turns core results into Dagster metadata people would rather see than read."""

import dagster as dg

from judgeloop.agreement import Agreement


def agreement_metadata(prefix: str, result: Agreement) -> dict:
    # Plain floats, so Dagster plots each across materializations.
    data = {
        f"kappa_{prefix}": float(result.kappa),
        f"exact_agreement_{prefix}": float(result.exact),
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


def rejections_table(rejections) -> dg.MetadataValue:
    columns = [dg.TableColumn(name, "string") for name in ("trace_id", "reviewer", "value", "reason")]
    records = [
        dg.TableRecord({"trace_id": r.trace_id, "reviewer": str(r.reviewer), "value": str(r.value), "reason": r.reason})
        for r in rejections[:200]
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
