"""One label sensor tick builds its workspace once and reads judgeloop up's state file once:
both used to be re-derived on every call (6-7 reads of running.json per tick, each probing a process)."""

import dagster as dg
import pytest

from judgeloop import workspace
from judgeloop.sme_labels import labels
from judgeloop.stack import running_stack
from judgeloop_assets.definitions import defs
from judgeloop_assets.resources import JudgeloopConfig


@pytest.fixture
def counted(monkeypatch):
    """Counts (without changing them) state-file reads and workspace constructions."""
    counts = {"state_file_reads": 0, "workspaces_built": 0}
    read_state, built = running_stack.read_state, workspace.Workspace.__init__

    def counting_read(home):
        counts["state_file_reads"] += 1
        return read_state(home)

    def counting_init(self, *args, **kwargs):
        counts["workspaces_built"] += 1
        built(self, *args, **kwargs)

    monkeypatch.setattr(running_stack, "read_state", counting_read)
    monkeypatch.setattr(workspace.Workspace, "__init__", counting_init)
    return counts


def test_a_sensor_tick_builds_one_workspace_and_reads_the_state_file_once(template_store, instance, counted):
    settings, experiment_id, trace_ids = template_store
    for trace_id in trace_ids:
        labels.log_label(trace_id, settings.judge_name, 3, "rater-1", "because")
    for key in counted:
        counted[key] = 0
    context = dg.build_sensor_context(instance=instance, resources={"judgeloop": JudgeloopConfig()}, definitions=defs)
    result = defs.resolve_sensor_def("sme_labels_sensor").evaluate_tick(context)
    assert result.cursor  # the tick read the labels
    assert counted == {"state_file_reads": 1, "workspaces_built": 1}


def test_a_realignment_run_builds_one_workspace_and_reads_the_state_file_once(template_store, instance, counted, monkeypatch):
    from tests.support import accept_any_split, materialize

    settings, experiment_id, trace_ids = template_store
    accept_any_split(monkeypatch)
    monkeypatch.setenv("JUDGELOOP_MIN_ALIGNMENT_LABELS", "1")
    monkeypatch.setenv("JUDGELOOP_MIN_HELDOUT_LABELS", "0")
    assert materialize(instance, ["base_judge"]).success
    for trace_id in trace_ids:
        labels.log_label(trace_id, settings.judge_name, 3, "rater-1", "because")
    for key in counted:
        counted[key] = 0
    result = materialize(instance, ["aligned_judge", "live_agreement"])  # the gate may block: the count holds either way
    assert result.asset_materializations_for_node("aligned_judge")
    assert counted == {"state_file_reads": 1, "workspaces_built": 1}
