"""Which re-alignment the label path pushed the label sensor takes as its own.

Whoever writes labels through judgeloop (``labels import``, the demo's releases, ``labels
notify``) may launch ``realign_judge`` itself instead of waiting for the sensor's poll. Such a
run carries the tags the sensor needs to settle it like a run it had requested: the position of
the newest label it was launched for and a run key.
"""

import dagster as dg

from judgeloop.sme_labels.notify import PUSHED_RUN_KEY_TAG as RUN_KEY_TAG
from judgeloop.sme_labels.notify import TRIGGER_TAG
from judgeloop.run_names import REALIGN_JOB

PUSHED = "notify"
ADOPTABLE = (
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS,
)


def pushed_run_to_adopt(state, instance: dg.DagsterInstance) -> tuple[str, tuple[int, str]] | None:
    """The run key and label range of a pushed re-alignment the label sensor should take as its
    own in-flight run (``state`` is its ``waiting.RealignState``), or None.

    Taken only when no re-alignment is in flight, the pushed run is in progress or succeeded and
    its range ends past the labels already used. The run aligns on exactly that range
    (``labels.LABELS_UP_TO_TAG``), so the sensor counts the labels up to it as taken and any label
    past it as waiting, whatever it read meanwhile.
    """
    from judgeloop.sme_labels import labels

    if state.inflight is not None:
        return None
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=REALIGN_JOB, tags={TRIGGER_TAG: PUSHED}), limit=1)
    if not runs:
        return None
    run = runs[0]
    run_key, up_to = run.tags.get(RUN_KEY_TAG), labels.decode_key(run.tags.get(labels.LABELS_UP_TO_TAG))
    if run.status not in ADOPTABLE or not run_key or up_to is None or up_to <= state.consumed.key:
        return None
    return run_key, up_to
