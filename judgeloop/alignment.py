"""Re-aligns the promoted judge to the SMEs with MemAlign and measures it on held-out labels.

MemAlign reads labels straight off the traces it is given, including overridden (invalid)
ones, and a judge loaded from the registry rebuilds its memory from the raw traces in the
store. So every trace handed to MemAlign, and every trace a loaded judge remembers, is first
reduced to the labels that count (``labels.usable``): MemAlign never sees an invalid label.
"""

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from judgeloop import agreement, judges, labels, providers, split
from judgeloop.calls import count_litellm_calls
from judgeloop.settings import Settings

log = logging.getLogger(__name__)


class NotEnoughLabelsError(ValueError):
    """Too few labelled traces to align and to measure; the message says how many more."""


@dataclass
class AlignmentResult:
    judge_name: str
    previous_version: int
    new_version: int | None
    skipped_reason: str | None
    alignment_traces: int
    heldout_traces: int
    alignment_labels: int
    heldout_labels: int
    newest_label_ms: int
    guidelines: list[str]
    before: agreement.Agreement | None
    after: agreement.Agreement | None
    human_ceiling: agreement.Agreement | None
    rejected: list[labels.Rejection]
    llm_calls: dict = field(default_factory=dict)
    label_fingerprint: str = ""
    judge: object = field(default=None, repr=False)  # the aligned judge object, for callers in this process


def label_fingerprint(used: list[labels.HumanLabel]) -> str:
    payload = "|".join(sorted(f"{label.assessment_id}:{label.value}" for label in used))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def clean_trace(trace, judge_name: str, keep_ids: set[str], settings: Settings | None = None):
    """A copy of ``trace`` whose labels named like the judge are only the ones in ``keep_ids``.

    Other assessments (the LLM judge's own scores, other names) are dropped too: they are not
    labels and must not leak into what the judge learns or is measured on. With ``settings``,
    values are put in the judge's own type (the MLflow UI stores a 3 on a 1-4 scale as 3.0).
    """
    import copy

    from mlflow.entities import Trace, TraceInfo

    info = TraceInfo.from_dict(trace.info.to_dict())
    kept = []
    for assessment in trace.info.assessments or []:
        if assessment.assessment_id not in keep_ids:
            continue
        if settings is not None and getattr(assessment, "feedback", None) is not None:
            assessment = copy.deepcopy(assessment)
            assessment.feedback.value = labels.normalize(settings, assessment.feedback.value)
        kept.append(assessment)
    info.assessments = kept
    return Trace(info=info, data=trace.data)


def cleaned_traces(settings: Settings, trace_ids, used: list[labels.HumanLabel]) -> dict:
    """``{trace id: trace}`` read from the store, carrying only the ``used`` labels."""
    from mlflow import MlflowClient

    client = MlflowClient()
    keep_ids = {label.assessment_id for label in used}
    return {tid: clean_trace(client.get_trace(tid), settings.judge_name, keep_ids, settings) for tid in trace_ids}


def hydrate_memory(judge, traces_by_id: dict) -> None:
    """Build a registry-loaded MemAlign judge's episodic memory from cleaned traces.

    Its own lazy rebuild would fetch raw traces (with overridden labels) and, when first
    used from several threads, score some calls with an empty memory.
    """
    from mlflow.genai.judges.optimizers.dspy_utils import create_dspy_signature, trace_to_dspy_example
    from mlflow.genai.judges.optimizers.memalign.optimizer import MemoryAugmentedJudge, _build_embedder

    if not isinstance(judge, MemoryAugmentedJudge) or judge._embedder is not None:
        return
    judge._base_signature = create_dspy_signature(judge._base_judge)
    judge._embedder = _build_embedder(judge._embedding_model, judge._embedding_dim)
    kept_ids = [tid for tid in judge._episodic_trace_ids if tid in traces_by_id]
    judge._episodic_trace_ids = kept_ids
    judge._episodic_memory = [
        example for tid in kept_ids for example in trace_to_dspy_example(traces_by_id[tid], judge._base_judge)
    ]
    if judge._episodic_memory:
        judge._build_episodic_memory()


def score(judge, traces: list, workers: int = 4) -> list:
    """The judge's value for each trace (None where it failed), in order."""

    def one(trace):
        try:
            feedback = judge(trace=trace)
        except Exception as exc:  # a provider error on one trace must not sink the whole measurement
            log.warning("judge failed on trace %s: %s", trace.info.trace_id, exc)
            return None
        return None if feedback.error else feedback.value

    if not traces:
        return []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, traces))


def measure_on(settings: Settings, judge, heldout_traces: list, by_trace: dict) -> agreement.Agreement:
    judged = score(judge, heldout_traces)
    human, machine = [], []
    for trace, value in zip(heldout_traces, judged):
        if value is None:
            continue
        for label in by_trace[trace.info.trace_id]:
            human.append(labels.normalize(settings, label.value))
            machine.append(value)
    return agreement.measure(settings, human, machine)


def guidelines_of(judge) -> list[str]:
    return [g.guideline_text for g in getattr(judge, "_semantic_memory", None) or []]


def align(settings: Settings, experiment_id: str, progress=log.info, force: bool = False) -> AlignmentResult:
    """Align the promoted judge on the alignment split; measure old and new on the held-out split.

    Registers the aligned judge as a new version but does NOT promote it: the caller promotes
    after the agreement gate passed. With the same labels as the promoted judge was aligned
    on (and ``force`` unset), nothing is registered.
    """
    from mlflow.genai.judges.optimizers import MemAlignOptimizer

    uris = providers.require_models(settings, "judge", "reflection", "embeddings")
    used, rejected = labels.current_labels(settings, experiment_id)
    grouped = labels.by_trace(used)
    align_ids, heldout_ids = split.split(sorted(grouped), settings.heldout_fraction)
    progress(
        f"{len(used)} usable labels on {len(grouped)} traces ({len(rejected)} rejected): "
        f"{len(align_ids)} traces to align on, {len(heldout_ids)} held out"
    )
    if len(align_ids) < settings.min_alignment_labels or len(heldout_ids) < settings.min_heldout_labels:
        raise NotEnoughLabelsError(
            f"Need at least {settings.min_alignment_labels} labelled traces to align on and "
            f"{settings.min_heldout_labels} held out (fraction {settings.heldout_fraction:.2f}); have "
            f"{len(align_ids)} and {len(heldout_ids)}. Label more traces in the review queue."
        )

    previous_version, previous = judges.load_promoted(settings, experiment_id)
    fingerprint = label_fingerprint([label for tid in align_ids for label in grouped[tid]])
    previous_lineage = judges.lineage(experiment_id, previous_version)
    newest = max(label.updated_ms for label in used)

    progress(f"loading {len(grouped)} labelled traces")
    cleaned = cleaned_traces(settings, grouped, used)
    base = dict(
        judge_name=settings.judge_name, previous_version=previous_version,
        alignment_traces=len(align_ids), heldout_traces=len(heldout_ids),
        alignment_labels=sum(len(grouped[t]) for t in align_ids),
        heldout_labels=sum(len(grouped[t]) for t in heldout_ids),
        newest_label_ms=newest, rejected=rejected, label_fingerprint=fingerprint,
    )
    if not force and previous_lineage.get("label_fingerprint") == fingerprint:
        return AlignmentResult(
            **base, new_version=None, skipped_reason=f"judge v{previous_version} is already aligned on these labels",
            guidelines=guidelines_of(previous), before=None, after=None,
            human_ceiling=agreement.human_ceiling(settings, {t: grouped[t] for t in heldout_ids}),
        )

    heldout_traces = [cleaned[tid] for tid in heldout_ids]
    with count_litellm_calls() as align_calls:
        # Traces the previous judge remembers but whose labels are gone (deleted or now invalid)
        # stay out of its memory, rather than make MemAlign fail on an empty trace.
        hydrate_memory(previous, {tid: cleaned[tid] for tid in align_ids})
        progress(f"aligning judge v{previous_version} with MemAlign on {len(align_ids)} traces")
        optimizer = MemAlignOptimizer(reflection_lm=uris["reflection"], embedding_model=uris["embeddings"])
        aligned = optimizer.align(previous, [cleaned[tid] for tid in align_ids])
    with count_litellm_calls() as measure_calls:
        progress(f"measuring judge v{previous_version} and the aligned judge on {len(heldout_ids)} held-out traces")
        before = measure_on(settings, previous, heldout_traces, grouped)
        after = measure_on(settings, aligned, heldout_traces, grouped)
    version = judges.register(aligned, experiment_id)
    judges.record_lineage(
        experiment_id,
        version,
        {
            "kind": "aligned",
            "previous_version": previous_version,
            "label_count": base["alignment_labels"],
            "heldout_label_count": base["heldout_labels"],
            "newest_label_ms": newest,
            "label_fingerprint": fingerprint,
            "kappa_before": before.kappa,
            "kappa_after": after.kappa,
            "guidelines": guidelines_of(aligned),
        },
    )
    # Alignment itself (MemAlign's reflection and embeddings) is what grows with new labels;
    # measuring runs both judges over the held-out split, which grows with all labels.
    calls = {
        "align_reflection_calls": align_calls["completion"],
        "align_embedding_calls": align_calls["embedding"],
        "measure_judge_calls": 2 * len(heldout_ids),
        "measure_embedding_calls": measure_calls["embedding"],
    }
    progress(f"registered judge v{version}: kappa {before.kappa:.3f} -> {after.kappa:.3f}; calls {calls}")
    return AlignmentResult(
        **base, new_version=version, skipped_reason=None, guidelines=guidelines_of(aligned),
        before=before, after=after,
        human_ceiling=agreement.human_ceiling(settings, {t: grouped[t] for t in heldout_ids}),
        llm_calls=calls, judge=aligned,
    )


def passes_gate(result: AlignmentResult, margin: float) -> tuple[bool, str]:
    if result.new_version is None:
        return True, result.skipped_reason or "nothing to promote"
    delta = result.after.kappa - result.before.kappa
    if delta < -margin:
        return False, (
            f"held-out kappa fell from {result.before.kappa:.3f} (v{result.previous_version}) to "
            f"{result.after.kappa:.3f} (v{result.new_version}), more than the margin {margin:.3f}"
        )
    return True, (
        f"held-out kappa {result.before.kappa:.3f} -> {result.after.kappa:.3f} "
        f"(change {delta:+.3f}, margin {margin:.3f})"
    )
