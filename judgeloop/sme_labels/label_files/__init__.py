"""SME labels in and out of MLflow as files (CSV or JSONL).

A label file has one row per (trace, reviewer): ``trace_id, value, comment, reviewer``.
Importing validates every row before writing anything; a row is written as HUMAN feedback
named like the judge (exactly what the MLflow review UI writes). Importing is idempotent:
a row equal to the reviewer's current label on that trace is skipped, a different one
overrides it (the old label stays stored as ``valid=False`` history, as a UI edit does).
Exporting writes the current valid labels in the same format, so export -> import changes
nothing.

One module per reason to change:
- ``formats``: the text of a file (CSV/JSONL syntax, line numbers, encodings);
- ``rows``: what a well-formed row is (a pydantic model checked against the judge's scale);
- ``traces``: which traces of the store the rows refer to;
- ``importing``: planning and writing an import;
- ``exporting``: writing the current labels to a file.

No Dagster import here: the CLI uses this package and must stay light.
"""
