"""Dagster metadata about SME labels, shown by the label sensor's runless event and by aligned_judge."""

import dagster as dg


def rejections_table(rejections) -> dg.MetadataValue:
    columns = [dg.TableColumn(name, "string") for name in ("trace_id", "reviewer", "value", "reason")]
    records = [
        dg.TableRecord({"trace_id": r.trace_id, "reviewer": str(r.reviewer), "value": str(r.value), "reason": r.reason})
        for r in rejections[:200]
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))
