"""The label path pushes: a re-alignment launched as soon as a batch of labels is written.

Dagster's sensor daemon looks at ``sme_labels_sensor`` at most every 5 s, so an expert whose
labels arrived through judgeloop (``labels import``, the demo's releases, ``labels notify``)
would wait up to a whole poll for nothing. Whoever wrote the labels launches ``realign_judge``
itself through Dagster's GraphQL API instead; labels written in the MLflow UI still wait for the
sensor's poll.

A pushed run carries the tags the sensor needs to take it as its own (``adopt``,
sensors/pushed_runs.py): the position of the newest label it was launched for and a run key, so
the sensor settles it like a run it had requested (its labels are used on success, wait again on
failure) and never requests a second run for the same labels.
"""

from judgeloop.run_names import REALIGN_JOB



def push_realignment(settings, experiment_id: str, url: str | None = None, min_new_labels: int = 1, force: bool = False):
    """Launch ``realign_judge`` now if at least ``min_new_labels`` usable labels are newer than the
    promoted judge's; returns (run id or None, why). Raises ``DagsterError`` when Dagster cannot be
    reached or refuses."""
    from judgeloop.sme_labels.notify import decide_notify
    from judgeloop_assets.dagster_client import DagsterClient

    decision = decide_notify(settings, experiment_id, force=force)
    if not decision.launch:
        return None, decision.reason
    if decision.new_labels < min_new_labels:
        return None, f"{decision.new_labels} new label(s), {min_new_labels} needed to re-align"
    dagster = DagsterClient((url or settings.resolved_dagster_url).rstrip("/"))
    running = dagster.active_runs(REALIGN_JOB)
    if running:
        return None, f"{REALIGN_JOB} run {running[0]} is already queued or running ({decision.reason}; it counts in the next run)"
    return dagster.launch(REALIGN_JOB, decision.tags), decision.reason


def push_after_writing(settings, experiment_id: str, say=print) -> str | None:
    """After labels were written: push a re-alignment when a ``judgeloop up`` (or a configured
    Dagster) is there and a whole batch (``label_threshold``) waits; otherwise leave it to the
    sensor. Never fails the write that came before it."""
    if not (settings.dagster_url or settings.running_stack.get("dagster_url")):
        return None
    from judgeloop_assets.dagster_client import DagsterError

    try:
        run_id, why = push_realignment(settings, experiment_id, min_new_labels=settings.label_threshold)
    except DagsterError as exc:
        say(f"re-alignment not pushed ({exc}); the label sensor will find these labels")
        return None
    if run_id:
        say(f"launched {REALIGN_JOB} run {run_id}: {why}")
    return run_id
