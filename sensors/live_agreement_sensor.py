"""Live agreement runs after a re-alignment, in its own run, never on the way to a promotion.

An expert waiting for the re-aligned judge waits only for what decides the promotion
(``realign_judge``: aligned_judge, then optimized_prompt). Once such a run has finished, these
sensors request a ``measure_live_agreement`` run: the judge that was in use when the labels
arrived, against them. A slow, failing or hanging live agreement measurement changes nothing
about the promotion, which already happened, nor about the next re-alignment (the label sensor
only waits for ``realign_judge`` runs).

A re-alignment ends SUCCESS (promoted, or nothing new) or FAILURE (gate blocked, crash): live
agreement is worth measuring after either, so there is one sensor per status. Runs that only
finish an interrupted prompt optimization read no labels and are skipped.
"""

import dagster as dg

from judgeloop.run_names import LIVE_AGREEMENT_JOB, run_limit_tags
from judgeloop.settings import Settings
from sensors.sme_labels_sensor import FINISH_TAG, realign_job

live_agreement_job = dg.define_asset_job(
    LIVE_AGREEMENT_JOB,
    selection=dg.AssetSelection.assets("live_agreement"),
    description="Measure the judge in use against the SME labels that arrived (after each re-alignment).",
    tags=run_limit_tags(queue="after"),
)

TRIGGER_TAG = "judgeloop/after_run"


def request_after(context: dg.RunStatusSensorContext):
    """One live agreement run per finished re-alignment (its run id is the run key)."""
    run = context.dagster_run
    if FINISH_TAG in run.tags:
        return dg.SkipReason(f"run {run.run_id[:8]} only finished a prompt optimization: no labels to measure")
    return dg.RunRequest(run_key=f"live-after-{run.run_id}", tags={TRIGGER_TAG: run.run_id})


def build_live_agreement_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    sensors = []
    for status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
        sensors.append(
            dg.run_status_sensor(
                run_status=status,
                name=f"live_agreement_after_realign_{status.value.lower()}",
                monitored_jobs=[realign_job],
                request_job=live_agreement_job,
                default_status=dg.DefaultSensorStatus.RUNNING,
                # Nothing waits on it: looking every 30 s keeps the daemon's loop free for the label
                # sensor, whose ticks start re-alignments (each look is a call to the code server).
                minimum_interval_seconds=max(30, settings.sensor_interval_seconds),
                description=f"After a realign_judge run ends {status.value}, measure live agreement in its own run.",
            )(request_after)
        )
    return sensors
