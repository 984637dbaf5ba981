"""The offline stand-in judge learns from MemAlign: labels reach it through MemAlign's memory."""

from mlflow import MlflowClient
from mlflow.genai.judges.optimizers import MemAlignOptimizer

from judgeloop.judging import judges, scores
from judgeloop.sme_labels.labels import log_label
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect


def test_aligned_stand_in_scores_follow_the_expert_labels(home, template):
    import shutil

    shutil.copytree(template[0], home)
    settings = load_settings()
    connect(settings)
    base = judges.build_judge(settings, settings.judge_model)
    client = MlflowClient()
    traces = [client.get_trace(trace_id) for trace_id in template[2]]
    def score(judge, traces):
        scored = scores.call_judge(settings, judge, traces)
        return [scored.values.get(trace.info.trace_id) for trace in traces]

    generic = score(base, traces)
    # Labels the stand-in's generic judgement would never give: the far end of the scale.
    wanted = [1 if value >= 3 else 4 for value in generic]
    for trace_id, value in zip(template[2], wanted):
        log_label(trace_id, settings.judge_name, value, reviewer="alice")
    labelled = [client.get_trace(trace_id) for trace_id in template[2]]
    aligned = MemAlignOptimizer(reflection_lm=settings.reflection_model, embedding_model=settings.embedding_model).align(
        base, labelled
    )
    assert score(aligned, traces) == wanted  # the experts' ratings, retrieved from memory
    assert score(base, traces) == generic  # without memory: the generic judgement
