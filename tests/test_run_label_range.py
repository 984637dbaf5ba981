"""A re-alignment aligns on exactly the labels it was handed (``labels.LABELS_UP_TO_TAG``), not on
whatever is in the store when it starts: the one record of which labels a run used."""

import dagster as dg

from judgeloop.judging import judges
from judgeloop.sme_labels import labels
from judgeloop_assets.definitions import ALL_ASSETS
from judgeloop_assets.resources import JudgeloopConfig
from tests.support import accept_any_split, materialize


def test_a_run_aligns_on_the_labels_up_to_the_range_it_was_handed(template_store, instance, monkeypatch):
    settings, experiment_id, trace_ids = template_store
    accept_any_split(monkeypatch)
    monkeypatch.setenv("JUDGELOOP_MIN_ALIGNMENT_LABELS", "1")
    monkeypatch.setenv("JUDGELOOP_MIN_HELDOUT_LABELS", "0")
    assert materialize(instance, ["base_judge"]).success
    handed = [labels.log_label(t, "answer_quality", 3, "rater-1", "ok") for t in trace_ids]
    current, _ = labels.current_labels(settings, experiment_id)
    up_to = max(label.key for label in current)
    later = [labels.log_label(t, "answer_quality", 1, "rater-2", "late") for t in trace_ids]  # after the hand-over

    result = dg.materialize(
        ALL_ASSETS, selection=["aligned_judge"], resources={"judgeloop": JudgeloopConfig()}, instance=instance,
        tags={labels.LABELS_UP_TO_TAG: labels.encode_key(up_to)}, raise_on_error=False,
    )
    assert result.asset_materializations_for_node("aligned_judge"), result.all_events
    version = judges.latest_version(experiment_id, settings.judge_name)
    assert version == 2
    lineage = judges.lineage(experiment_id, version)
    assert lineage["newest_label_ms"] == up_to[0], "the run took labels past the range it was handed"
    assert len(handed) == len(later) == len(trace_ids)
    assert lineage["label_count"] + lineage["heldout_label_count"] == len(handed), lineage


def test_the_label_range_tag_round_trips_and_refuses_garbage():
    assert labels.decode_key(labels.encode_key((1700000000123, "a-1/b"))) == (1700000000123, "a-1/b")
    assert labels.decode_key(None) is None
    import pytest

    with pytest.raises(ValueError, match="labels_up_to"):
        labels.decode_key("yesterday/x")
