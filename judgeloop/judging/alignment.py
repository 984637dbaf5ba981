"""Re-aligns the promoted judge to the SMEs with MemAlign and measures it on held-out labels.

MemAlign reads labels straight off the traces it is given, including overridden (invalid)
ones, and a judge loaded from the registry rebuilds its memory from the raw traces in the
store. So every trace handed to MemAlign, and every trace a loaded judge remembers, is first
reduced to the labels that count (``labels.usable``): MemAlign never sees an invalid label.
Several experts on one trace become one consensus label first (``experts.CONSENSUS_RULE``):
MemAlign would otherwise drop the minority itself, silently, and the held-out measure
would weigh a trace by its number of experts.

The agreement recorded for a new version (and used by the gate) is measured on that version
loaded back from the registry the way every later user loads it (``load_judge``), so the
number describes the judge that gets promoted, not an in-memory twin of it.
"""

import hashlib
import logging
from dataclasses import dataclass, field, replace

from judgeloop.judging import agreement, intervals, judges, sampling, scores, split
from judgeloop.model_calls import providers
from judgeloop.sme_labels import experts, labels
from judgeloop.model_calls.calls import count_litellm_calls
from judgeloop.mlflow_internals.memalign_memory import guideline_sources, guidelines_of, hydrate_memory, remembered_trace_ids, withdraw
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
    human_ceiling: "experts.Ceiling | None"
    rejected: list[labels.Rejection]
    # Model calls made by this run, per kind (never the stored scores reused: they cost nothing).
    llm_calls: dict = field(default_factory=dict)
    scores_reused: int = 0  # judge scores read back from MLflow instead of paid for
    # Guidelines of the previous judge drawn from traces whose labels changed since: not carried over.
    guidelines_withdrawn: list[str] = field(default_factory=list)
    used_labels: list = field(default_factory=list, repr=False)  # the labels this run read (for the reference chart)
    label_fingerprint: str = ""
    judge: object = field(default=None, repr=False)  # the judge as loaded back from the registry
    heldout_sample: int = 0  # held-out traces measured (at most settings.heldout_max)
    before_scores: scores.Scores | None = None  # the promoted judge on the sample (reused + paid)
    after_scores: scores.Scores | None = None  # the aligned judge on the sample
    comparison: intervals.Paired | None = None  # both judges on the traces both scored, with intervals
    # One consensus label per trace is what MemAlign learns from (alignment_traces of them).
    label_rule: str = experts.CONSENSUS_RULE
    # Judge answers outside the scale (a 9 on 1-4), per measured judge: reported, never scored.
    invalid_answers: dict = field(default_factory=dict)
    # With no re-alignment, the judge in use measured again on the current held-out labels.
    current: agreement.Agreement | None = None


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
    from judgeloop.tracing.trace_fields import view

    # The question and answer as the settings pick them out of a nested (autologged) trace.
    return view(settings, Trace(info=info, data=trace.data))


def cleaned_traces(
    settings: Settings, experiment_id: str, trace_ids, used: list[labels.HumanLabel], raw_out: dict | None = None
) -> dict:
    """``{trace id: trace}`` read from the store (in bulk), each carrying only its consensus label.

    ``raw_out``, when given, receives the traces as read (with the judges' stored scores).
    """
    from judgeloop.tracing.traces import read_many

    wanted = set(trace_ids)
    chosen = experts.consensus_by_trace(settings, labels.by_trace([l for l in used if l.trace_id in wanted]))
    keep_ids = {label.assessment_id for label in chosen.values()}
    cleaned = {}
    for tid, raw in read_many(experiment_id, list(trace_ids)).items():
        if raw_out is not None:
            raw_out[tid] = raw
        cleaned[tid] = clean_trace(raw, settings.judge_name, keep_ids, settings)
    return cleaned


def load_judge(settings: Settings, experiment_id: str, version: int, used: list[labels.HumanLabel], cleaned=None):
    """Judge ``version`` from the registry, its memory built from the current ``used`` labels.

    Every user of a stored judge loads it through here (the gate's measure, prompt
    optimization, the next alignment), so all of them score with the same judge. ``cleaned``
    (``{trace id: cleaned trace}``) saves reading traces already read.
    """
    judge = judges.load(experiment_id, settings.judge_name, version)
    remembered = remembered_trace_ids(judge)
    if remembered:
        labelled = {label.trace_id for label in used}
        # Traces the judge remembers whose labels are gone (deleted or now invalid) stay out of
        # its memory, rather than make MemAlign fail on an empty trace.
        ids = [tid for tid in remembered if tid in labelled]
        missing = [tid for tid in ids if cleaned is None or tid not in cleaned]
        traces = {**(cleaned or {}), **(cleaned_traces(settings, experiment_id, missing, used) if missing else {})}
        hydrate_memory(judge, {tid: traces[tid] for tid in ids})
    return judge


def align(
    settings: Settings, experiment_id: str, progress=log.info, force: bool = False, up_to: tuple[int, str] | None = None
) -> AlignmentResult:
    """Align the promoted judge on the alignment split; measure old and new on the held-out split.

    Registers the aligned judge as a new version but does NOT promote it: the caller promotes
    after the agreement gate passed. With the same labels as the promoted judge was aligned
    on (and ``force`` unset), nothing is registered and the judge in use is measured again
    on the current held-out labels (which may have changed). ``up_to`` is the label range the run
    was handed (``labels.LABELS_UP_TO_TAG``): labels past it wait for the next run.
    """
    from mlflow.genai.judges.optimizers import MemAlignOptimizer

    # Everything before this line is the process's one-off start (MLflow, MemAlign, the model
    # clients imported); from here on, the work this run was launched for.
    progress("libraries loaded: reading labels")
    uris = providers.require_models(settings, "judge", "reflection", "embeddings")
    used, rejected = labels.current_labels(settings, experiment_id, up_to=up_to)
    grouped = labels.by_trace(used)
    consensus = experts.consensus_by_trace(settings, grouped)
    align_ids, heldout_ids = split.split(sorted(grouped), settings.heldout_fraction)
    progress(
        f"{len(used)} usable labels on {len(grouped)} traces ({len(rejected)} rejected), one consensus "
        f"label per trace: {len(align_ids)} traces to align on, {len(heldout_ids)} held out"
    )
    if len(align_ids) < settings.min_alignment_labels or len(heldout_ids) < settings.min_heldout_labels:
        raise NotEnoughLabelsError(
            f"Need at least {settings.min_alignment_labels} labelled traces to align on and "
            f"{settings.min_heldout_labels} held out (fraction {settings.heldout_fraction:.2f}); have "
            f"{len(align_ids)} and {len(heldout_ids)}. Label more traces in the review queue."
        )

    previous_version = judges.require_promoted(experiment_id)
    fingerprint = label_fingerprint([label for tid in align_ids for label in grouped[tid]])
    previous_lineage = judges.lineage(experiment_id, previous_version)
    newest = max(label.updated_ms for label in used)

    # Measuring costs a judge call per held-out trace: a stable, stratified sample of at most
    # heldout_max traces bounds it, whatever the number of labels.
    sample_ids = sampling.sample(settings, {t: [label.value for label in grouped[t]] for t in heldout_ids}, settings.heldout_max)
    progress(f"loading {len(grouped)} labelled traces")
    raw: dict = {}
    cleaned = cleaned_traces(settings, experiment_id, grouped, used, raw_out=raw)
    previous = load_judge(settings, experiment_id, previous_version, used, cleaned)
    # Judges are measured against each held-out trace's consensus label (the same rule MemAlign learns from).
    measured_against = {t: [consensus[t]] for t in heldout_ids}
    base = dict(
        judge_name=settings.judge_name, previous_version=previous_version,
        alignment_traces=len(align_ids), heldout_traces=len(heldout_ids),
        alignment_labels=sum(len(grouped[t]) for t in align_ids),
        heldout_labels=sum(len(grouped[t]) for t in heldout_ids),
        newest_label_ms=newest, rejected=rejected, label_fingerprint=fingerprint,
        heldout_sample=len(sample_ids), used_labels=used,
    )
    if not force and previous_lineage.get("label_fingerprint") == fingerprint:
        # Nothing new to learn, but held-out labels may have changed: numbers from the last
        # alignment would mix old labels into this report, so the judge in use is measured now.
        progress(f"judge v{previous_version} is already aligned on these labels; measuring it on the current held-out labels")
        with count_litellm_calls() as measure_calls:
            current_scores = scores.measure(settings, previous, previous_version, {t: cleaned[t] for t in sample_ids}, raw=raw)
        current, invalid = agreement_of(settings, current_scores, measured_against), len(current_scores.invalid_answers)
        return AlignmentResult(
            **base, new_version=None, skipped_reason=f"judge v{previous_version} is already aligned on these labels",
            guidelines=guidelines_of(previous), before=None, after=None, current=current,
            human_ceiling=experts.ceiling(settings, {t: grouped[t] for t in sorted(current_scores.values)}),
            invalid_answers={"current": invalid}, judge=previous, scores_reused=current_scores.reused,
            llm_calls={"measure_judge_calls": current_scores.paid, "measure_embedding_calls": measure_calls["embedding"]},
        )

    sample = {tid: cleaned[tid] for tid in sample_ids}
    withdrawn: list[str] = []
    # A run after a blocked gate often sees the same alignment labels (new ones fell on the
    # held-out side): the version already built from them is measured again, not registered twice.
    version = None if force else judges.aligned_version_for(experiment_id, previous_version, fingerprint)
    reused = version is not None
    with count_litellm_calls() as align_calls:
        if reused:
            progress(f"judge v{version} was built from v{previous_version} on these labels and not promoted: measuring it again")
        else:
            changed = changed_since_alignment(previous, previous_lineage, grouped)
            learner, withdrawn = withdraw(previous, changed)
            if changed:
                progress(
                    f"{len(changed)} trace(s) judge v{previous_version} learned from have changed labels since: "
                    f"{len(withdrawn)} guideline(s) drawn from them withdrawn, their current labels learned again"
                )
            progress(f"aligning judge v{previous_version} with MemAlign on {len(align_ids)} traces")
            optimizer = MemAlignOptimizer(reflection_lm=uris["reflection"], embedding_model=uris["embeddings"])
            version = judges.register(optimizer.align(learner, [cleaned[tid] for tid in align_ids]), experiment_id)
    with count_litellm_calls() as measure_calls:
        # The new version as every later user gets it: loaded back from the registry.
        registered = load_judge(settings, experiment_id, version, used, cleaned)
        progress(
            f"measuring judge v{previous_version} (its stored scores reused) and v{version} on "
            f"{len(sample_ids)} of {len(heldout_ids)} held-out traces"
        )
        before_scores = scores.measure(settings, previous, previous_version, sample, raw=raw)
        # A new version has no stored scores yet (they are saved below); a reused one may have some.
        after_scores = scores.measure(settings, registered, version if reused else None, sample, raw=raw)
    before = agreement_of(settings, before_scores, measured_against)
    after = agreement_of(settings, after_scores, measured_against)
    comparison = compare(settings, measured_against, sample_ids, before_scores, after_scores)
    # The experts' own agreement on exactly the traces the two judges are compared on.
    common = [t for t in sample_ids if t in before_scores.values and t in after_scores.values]
    ceiling = experts.ceiling(settings, {t: grouped[t] for t in common})
    if not reused:
        # The new judge's scores become data now that it has a version: if it is promoted, the
        # next re-alignment reuses them instead of paying for them again.
        scores.save(settings, version, after_scores.values)
    judges.record_lineage(
        experiment_id,
        version,
        {
            "kind": "aligned",
            "previous_version": previous_version,
            "label_count": base["alignment_labels"],
            "heldout_label_count": base["heldout_labels"],
            "heldout_traces": len(heldout_ids),
            "heldout_sample": len(sample_ids),
            "measured_traces": comparison.traces,
            "newest_label_ms": newest,
            "label_fingerprint": fingerprint,
            "kappa_before": before.kappa,
            "kappa_after": after.kappa,
            "kappa_after_interval": [comparison.after["kappa"].low, comparison.after["kappa"].high],
            "kappa_difference_interval": [comparison.difference["kappa"].low, comparison.difference["kappa"].high],
            "ceiling_kappa": ceiling.kappa if ceiling else None,
            "guidelines": guidelines_of(registered),
            **({"guidelines_withdrawn": len(withdrawn)} if withdrawn else {}),
        },
    )
    # Alignment itself (MemAlign's reflection and embeddings) grows with the new labels only;
    # measuring pays the aligned judge on the sample plus the promoted judge on sample traces it
    # never scored, so it is bounded by heldout_max plus the newly sampled traces.
    calls = {
        "align_reflection_calls": align_calls["completion"],
        "align_embedding_calls": align_calls["embedding"],
        "measure_judge_calls": before_scores.paid + after_scores.paid,
        "measure_embedding_calls": measure_calls["embedding"],
    }
    progress(
        f"{'measured' if reused else 'registered'} judge v{version}: kappa {kappa_text(before)} -> {kappa_text(after)} "
        f"on {len(sample_ids)} of {len(heldout_ids)} held-out traces; "
        f"v{previous_version}: {before_scores.summary()}; v{version}: {after_scores.summary()}; calls {calls}"
    )
    return AlignmentResult(
        **base, new_version=version, skipped_reason=None, guidelines=guidelines_of(registered),
        before=before, after=after, llm_calls=calls, judge=registered, human_ceiling=ceiling,
        scores_reused=before_scores.reused + after_scores.reused, guidelines_withdrawn=withdrawn,
        before_scores=before_scores, after_scores=after_scores, comparison=comparison,
        invalid_answers={"before": len(before_scores.invalid_answers), "after": len(after_scores.invalid_answers)},
    )


def changed_since_alignment(judge, lineage: dict, grouped: dict) -> set[str]:
    """Traces ``judge`` learned from whose labels changed after it was aligned: a label edited,
    added (a consensus may move) or deleted since the newest label its alignment took."""
    aligned_up_to = lineage.get("newest_label_ms")
    if aligned_up_to is None:  # the base judge learned nothing
        return set()
    learned = set(remembered_trace_ids(judge)) | {t for ids in guideline_sources(judge).values() for t in ids}
    return {
        t for t in learned
        if t not in grouped or any(label.updated_ms > aligned_up_to for label in grouped[t])
    }


def agreement_of(settings: Settings, judged: scores.Scores, grouped: dict) -> agreement.Agreement:
    """A judge's agreement with the given SME labels on the traces it scored (unscored traces left out).

    A judge scored on no trace is unmeasured: its kappa and exact agreement are None, not 0.
    """
    human, machine = [], []
    for trace_id, value in judged.values.items():
        for label in grouped[trace_id]:
            human.append(labels.normalize(settings, label.value))
            machine.append(value)
    measured = agreement.measure(settings, human, machine)
    if measured.n == 0:
        return replace(measured, kappa=None, exact=None)
    return measured


def kappa_text(measured: agreement.Agreement | None) -> str:
    if measured is None or measured.kappa is None:
        return "unmeasured (no held-out trace scored)"
    return f"{measured.kappa:.3f}"


def compare(settings: Settings, grouped: dict, sample_ids: list[str], before: scores.Scores, after: scores.Scores) -> intervals.Paired:
    """Both judges on the sample traces both scored, with paired bootstrap intervals."""
    common = [t for t in sample_ids if t in before.values and t in after.values]
    return intervals.paired_bootstrap(
        settings,
        [[labels.normalize(settings, label.value) for label in grouped[t]] for t in common],
        [before.values[t] for t in common],
        [after.values[t] for t in common],
        resamples=settings.bootstrap_resamples,
        min_traces=settings.interval_min_traces,
    )
