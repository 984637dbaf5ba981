"""Labels the waiting count must see: those of a re-alignment that fails while a sensor tick is
being evaluated (its failure counted, its labels waiting again)."""

import dagster as dg

from judgeloop.sme_labels import waiting
from sensors import sme_labels_sensor
from tests.test_sme_labels_sensor import finish, store, tick, write  # noqa: F401  (fixture)


def test_a_run_that_fails_while_a_tick_is_evaluated_is_counted_as_failed(store, instance, monkeypatch):  # noqa: F811
    _, _, trace_ids = store
    write(trace_ids[:5])
    fired = tick(instance, None)
    assert len(fired.run_requests) == 1
    finish(instance, fired, status=dg.DagsterRunStatus.STARTED)
    write(trace_ids[5:10], reviewer="rater-2")  # five more arrive while it runs

    looked_up = sme_labels_sensor._run_status

    def fails_right_after_this_look(inst, run_key):
        status = looked_up(inst, run_key)
        run = inst.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": run_key}))[0]
        inst.report_run_failed(run, "the run worker died")  # at this very moment of the tick
        return status

    monkeypatch.setattr(sme_labels_sensor, "_run_status", fails_right_after_this_look)
    during = tick(instance, fired.cursor)
    monkeypatch.setattr(sme_labels_sensor, "_run_status", looked_up)
    # This tick saw the run still going: it waits instead of requesting a run that would drop the
    # failed run's labels from the count and its failure from the back-off.
    assert not during.run_requests, during.cursor

    after = tick(instance, during.cursor)
    state = waiting.RealignState.decode(after.cursor)
    assert state.failures == 1 and state.inflight is None
    assert "10 new SME label(s) waiting" in after.skip_message  # the failed run's five wait again
    assert "the last 1 re-alignment(s) failed" in after.skip_message
