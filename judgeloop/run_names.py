"""Names that address the code location's jobs, pool, resource and run tags.

Plain strings, so the CLI, the sensors and the assets share them without importing each other
(the CLI launches jobs by them, the sensors request runs of them, the assets declare them)."""

CODE_LOCATION = "judgeloop"  # also in pyproject.toml [tool.dagster] and workspace.yaml
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a Definitions object
FOUNDATION_JOB = "judgeloop_foundation"
REALIGN_JOB = "realign_judge"
RESOURCE_KEY = "judgeloop"  # the resource every asset and sensor reads its settings from
TRAFFIC_JOB = "score_new_traffic"
LIVE_AGREEMENT_JOB = "measure_live_agreement"
# Dagster concurrency pool of the read-then-promote steps (aligned_judge, optimized_prompt).
# The instance gives it one slot (`concurrency: pools: default_limit: 1`, written by
# `judgeloop up` and in deploy/dagster.yaml), so two re-alignment runs never promote at once;
# realign_pool.py writes that slot into the instance before any run claims it.
REALIGN_POOL = "judgeloop_realign"


QUEUE_TAG = "judgeloop/queue"  # `judgeloop up` runs one run per queue at a time (servers.dagster_yaml)


def run_limit_tags(queue: str = "loop") -> dict[str, str]:
    """Tags every job's runs carry: Dagster's run monitoring stops a run older than this, and the
    queue it waits in under `judgeloop up` ("loop", or "after" for what follows a re-alignment)."""
    from judgeloop.settings import load_settings

    return {"dagster/max_runtime": str(load_settings().max_run_seconds), QUEUE_TAG: queue}
