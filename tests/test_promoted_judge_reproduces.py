"""The judge the gate measured is the judge that is promoted: loaded fresh from the registry in
another process, it reproduces the recorded agreement exactly (offline models are deterministic)."""

import json
import os
import subprocess
import sys

from judgeloop.judging import judges
from judgeloop.tracing import demo
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.conftest import REPO
from tests.support import accept_any_split, materialize, metadata

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session"]

# What any later user of the promoted judge does (prompt optimization, the next alignment):
# load it from the registry, build its memory from the current labels, and measure it the way
# the product does (scores.measure on the held-out sample, agreement_of against the consensus),
# paying for every score again (no version given: nothing stored is read back).
MEASURE_IN_A_FRESH_PROCESS = """
import json
from judgeloop.judging import alignment, judges, sampling, scores, split
from judgeloop.sme_labels import experts, labels
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect

settings = load_settings()
experiment_id = connect(settings)
used, _ = labels.current_labels(settings, experiment_id)
grouped = labels.by_trace(used)
_, heldout = split.split(sorted(grouped), settings.heldout_fraction)
sample = sampling.sample(settings, {t: [l.value for l in grouped[t]] for t in heldout}, settings.heldout_max)
judge = alignment.load_judge(settings, experiment_id, judges.promoted_version(experiment_id), used)
traces = alignment.cleaned_traces(settings, experiment_id, sample, used)
scored = scores.measure(settings, judge, None, {t: traces[t] for t in sample}, store=False)
consensus = experts.consensus_by_trace(settings, grouped)
measured = alignment.agreement_of(settings, scored, {t: [consensus[t]] for t in sample})
print(json.dumps({"kappa": measured.kappa, "n": measured.n, "exact": measured.exact, "paid": scored.paid,
                  "memory": len(judge._episodic_memory), "remembered": len(set(judge._episodic_trace_ids))}))
"""


def test_promoted_judge_reloaded_in_a_new_process_reproduces_its_recorded_agreement(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")  # the gate's decision is not what is tested here
    accept_any_split(monkeypatch)
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    assert materialize(instance, FOUNDATION).success
    assert demo.release_labels(settings, experiment_id, 48).written == 48
    result = materialize(instance, ["aligned_judge"])
    assert result.success
    meta = metadata(result, "aligned_judge")
    assert meta["promoted_version"] == 2
    recorded = judges.lineage(experiment_id, 2)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE_IN_A_FRESH_PROCESS], env=env, capture_output=True, text=True, timeout=300,
        cwd=str(home.parent),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    fresh = json.loads(out.stdout.strip().splitlines()[-1])
    assert fresh["paid"] == fresh["n"] > 0, "every score was paid for again, none read back"
    assert fresh["n"] == recorded["measured_traces"]
    assert fresh["kappa"] == recorded["kappa_after"]
    assert fresh["exact"] == meta["exact_agreement_after"]
    # One remembered example per alignment trace (its consensus label), not one per expert squared.
    assert fresh["memory"] == fresh["remembered"] == meta["traces_alignment"]
