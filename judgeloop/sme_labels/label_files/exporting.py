"""Exporting the current valid labels as a label file that imports back unchanged."""

import os
import sys
import tempfile
from pathlib import Path

from judgeloop.sme_labels import labels as labels_core
from judgeloop.sme_labels.label_files.formats import write_rows
from judgeloop.sme_labels.label_files.rows import MAX_COMMENT_CHARS
from judgeloop.sme_labels.label_files.traces import trace_keys
from judgeloop.settings import Settings


def export_rows(settings: Settings, experiment_id: str) -> list[dict]:
    current, _ = labels_core.current_labels(settings, experiment_id)
    # The trace's own key travels with the label, so the file also imports into a store that
    # holds the same traces under other ids.
    keys = trace_keys(settings, experiment_id, {label.trace_id for label in current})
    rows = [
        {
            "trace_id": label.trace_id,
            "value": labels_core.normalize(settings, label.value),
            "comment": label.comment,
            "reviewer": label.reviewer,
            "trace_key": keys.get(label.trace_id),
            "judge": settings.judge_name,
        }
        for label in current
    ]
    return sorted(rows, key=lambda r: (r["trace_id"], r["reviewer"] or ""))


def too_long(rows: list[dict]) -> list[dict]:
    """Rows whose comment import would refuse (a label written another way, e.g. in the UI)."""
    return [row for row in rows if row["comment"] and len(row["comment"]) > MAX_COMMENT_CHARS]


def export_labels(
    settings: Settings, experiment_id: str, destination: str | Path, fmt: str, warn=lambda message: None
) -> int:
    """Write the current valid labels to ``destination`` ('-' = stdout); return how many.

    Every label is written as stored; ``warn`` hears about those the import would refuse."""
    rows = export_rows(settings, experiment_id)
    for row in too_long(rows):
        warn(
            f"the comment of {row['reviewer']} on trace {row['trace_id']} is {len(row['comment']):,} characters "
            f"long: exported as it is, but importing it is refused (limit {MAX_COMMENT_CHARS:,})"
        )
    if str(destination) == "-":
        write_rows(rows, sys.stdout, fmt)
        sys.stdout.flush()
        return len(rows)
    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written next to the target and renamed: a failed export never leaves half a file.
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            write_rows(rows, out, fmt)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return len(rows)
