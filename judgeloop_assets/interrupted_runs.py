"""Runs a stopped ``judgeloop up`` left behind as started.

``judgeloop up`` runs Dagster's processes itself; when it stops (Ctrl-C, a crash, a reboot) a
run in progress dies with them but stays "started" in the instance's storage. Nothing would
ever end it, and the label sensor, which waits while a re-alignment is in progress, would wait
for ever. Before Dagster starts again, such runs are marked failed: the sensor then sees the
failure, its labels wait again and it retries (and finishes a prompt optimization the
interrupted run never reached). Queued runs are left alone: the run queue launches them.
"""

from pathlib import Path

import dagster as dg

ORPHANED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def fail_interrupted_runs(dagster_home: Path) -> list[str]:
    """Mark the runs left in progress in the instance at ``dagster_home`` as failed; their ids."""
    if not Path(dagster_home).is_dir():
        return []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = list(instance.get_runs(filters=dg.RunsFilter(statuses=ORPHANED)))
        for run in runs:
            instance.report_run_failed(
                run, "interrupted: the judgeloop up running it stopped before it finished; the label sensor retries it"
            )
        return [run.run_id for run in runs]
