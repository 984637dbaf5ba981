"""At most one valid label per (trace, reviewer): what holds it when label writers run concurrently.

Two writers (two ``labels import`` runs, an import and the review form, the demo's releases) can
each find no label for a (trace, reviewer) and both write one, or both override the same label:
MLflow has no unique constraint or compare-and-set on assessments, so the store then holds two
valid labels for one reviewer's opinion. judgeloop handles it in two places:

- Reading: everywhere labels are read, a reviewer's current label on a trace is the newest valid
  one, by (update time, assessment id) (``labels.latest_per_reviewer``); older valid ones never
  count, also while a duplicate still exists.
- Writing: after writing labels, a writer calls ``repair``: it re-reads the labels and invalidates
  every valid label that is not the newest of its (trace, reviewer), by logging a marker
  assessment that overrides it. MLflow then stores the old label with ``valid=False``, exactly as
  after an edit in the review form; the marker (CODE feedback named ``SUPERSEDED``, value = the
  kept label's id) is not a label of the judge and records why.

Why concurrent repairs agree: each one keeps the newest label it read and invalidates only labels
older than one it read, so the newest label ever written is never invalidated, by anyone. Every
writer repairs after its own writes are committed, so the last writer's repair sees all of them.
"""

from judgeloop.sme_labels import labels
from judgeloop.settings import Settings

SUPERSEDED = "judgeloop.superseded_label"


def duplicates(found: list[labels.HumanLabel]) -> list[tuple[labels.HumanLabel, labels.HumanLabel]]:
    """(older valid label, the newest valid label of its (trace, reviewer)) for every duplicate."""
    newest = labels.latest_per_reviewer(found)
    return sorted(
        ((label, newest[(label.trace_id, label.reviewer)]) for label in found
         if label.valid and label is not newest[(label.trace_id, label.reviewer)]),
        key=lambda pair: pair[0].key,
    )


def repair(settings: Settings, experiment_id: str) -> int:
    """Invalidate every valid label that is not its (trace, reviewer)'s newest; returns how many."""
    import mlflow
    from mlflow.entities import AssessmentSource, Feedback

    found = duplicates(labels.changed_since(settings, experiment_id).labels)
    for older, kept in found:
        mlflow.log_assessment(
            older.trace_id,
            Feedback(
                name=SUPERSEDED,
                value=kept.assessment_id,
                rationale=(
                    f"{older.reviewer}'s label {older.assessment_id} was written concurrently with the newer "
                    f"{kept.assessment_id}; only the newest label of a reviewer on a trace stays valid."
                ),
                source=AssessmentSource(source_type="CODE", source_id="judgeloop"),
                overrides=older.assessment_id,
            ),
        )
    return len(found)
