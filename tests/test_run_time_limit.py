"""A run that exceeds JUDGELOOP_MAX_RUN_SECONDS is stopped by Dagster's run monitoring (in the
instance `judgeloop up` configures), with a message naming the limit."""

import pytest

from tests.e2e_support import run_failures, runs, start_up, wait_until

LIMIT = 5


@pytest.mark.slow
def test_a_run_over_its_time_limit_is_stopped_with_the_limit_named(tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "How does the virus spread?"}\n')
    up = start_up(tmp_path / "state", tmp_path / "work", env_extra={
        "JUDGELOOP_AGENT": "tests.agents:stuck_agent",  # tagged_traces waits on it for an hour
        "JUDGELOOP_QUESTIONS_PATH": str(questions),
        "JUDGELOOP_MAX_RUN_SECONDS": str(LIMIT),
    })
    try:
        up.wait_ready()

        def finished():
            found = runs(up.dagster_url, "judgeloop_foundation")
            return found[0] if found and found[0]["status"] in {"SUCCESS", "FAILURE", "CANCELED"} else None

        # Run monitoring polls every 30 s (dagster.yaml written by `up`); starting the run takes a while too.
        run = wait_until(finished, 240, interval=2, message="foundation run stopped", on_timeout=up.logs)
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["dagster/max_runtime"] == str(LIMIT)
        assert run["status"] == "FAILURE", up.logs()
        failures = run_failures(up.dagster_url, run["runId"])
        assert f"maximum runtime of {LIMIT} seconds" in failures, failures
        assert run["endTime"] - run["startTime"] < 120  # not the agent's hour
    finally:
        up.shutdown()
