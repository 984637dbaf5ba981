"""Every promoted judge version measured on one fixed reference: the current held-out labels.

Each version's own numbers were measured on the held-out split of its day, which grows with
every label: a kappa falling from 0.73 on 5 traces to 0.37 on 14 says more about the traces
than about the judge. Here every version ever promoted is measured on the same traces (the
held-out sample the next re-alignment would use) against the same consensus labels, from the
scores stored in MLflow: no judge is called. A version that has no stored score on some of
those traces is measured on the ones it has, and says so ("on 180 of 200").

It also keeps the promise that a promoted judge never falls below the base judge on the
current held-out labels without a warning.
"""

from dataclasses import dataclass

from judgeloop.judging import intervals, sampling, scores, split
from judgeloop.sme_labels import experts, labels
from judgeloop.settings import Settings


@dataclass(frozen=True)
class VersionOnReference:
    version: int
    kind: str  # base / aligned
    in_use: bool
    kappa: intervals.Estimate
    exact: intervals.Estimate
    traces: int  # reference traces this version has a stored score on

    def as_dict(self) -> dict:
        return {"version": self.version, "kind": self.kind, "in_use": self.in_use, "traces": self.traces,
                "kappa": self.kappa.as_dict(), "exact": self.exact.as_dict()}


@dataclass(frozen=True)
class Reference:
    heldout_traces: int  # the current held-out split
    traces: int  # the sample every version is measured on (at most heldout_max)
    versions: list[VersionOnReference]
    ceiling: "experts.Ceiling | None"
    warning: str | None

    def as_dict(self) -> dict:
        return {
            "heldout_traces": self.heldout_traces, "traces": self.traces,
            "versions": [v.as_dict() for v in self.versions],
            "ceiling": self.ceiling.as_dict() if self.ceiling else None,
            "warning": self.warning,
        }


def promoted_history(lineages: dict[int, dict], promoted: int | None) -> list[int]:
    """Versions that were in use at some point, in order: base judges and aligned versions the gate passed."""
    found = {
        v for v, entry in lineages.items()
        if entry.get("kind") == "base" or (entry.get("gate") or {}).get("passed")
    }
    if promoted is not None:
        found.add(promoted)
    return sorted(found)


def measure(
    settings: Settings, experiment_id: str, used: list[labels.HumanLabel], lineages: dict[int, dict],
    promoted: int | None, base: int | None,
) -> Reference:
    grouped = labels.by_trace(used)
    _, heldout_ids = split.split(sorted(grouped), settings.heldout_fraction)
    sample_ids = sampling.sample(settings, {t: [label.value for label in grouped[t]] for t in heldout_ids}, settings.heldout_max)
    consensus = experts.consensus_by_trace(settings, {t: grouped[t] for t in sample_ids})
    versions = promoted_history(lineages, promoted)
    stored = scores.stored_scores(settings, experiment_id, sample_ids, versions) if sample_ids and versions else {}
    measured = []
    for version in versions:
        values = stored.get(version, {})
        traced = [t for t in sample_ids if t in values]
        estimates = intervals.single_bootstrap(
            settings, [[labels.normalize(settings, consensus[t].value)] for t in traced], [values[t] for t in traced],
            settings.bootstrap_resamples, settings.interval_min_traces,
        )
        measured.append(VersionOnReference(
            version, (lineages.get(version) or {}).get("kind") or "unknown", version == promoted,
            estimates["kappa"], estimates["exact"], len(traced),
        ))
    ceiling = experts.ceiling(settings, {t: grouped[t] for t in sample_ids})
    warning = _below_base(settings, stored, consensus, sample_ids, promoted, base)
    return Reference(len(heldout_ids), len(sample_ids), measured, ceiling, warning)


def _below_base(settings, stored, consensus, sample_ids, promoted, base) -> str | None:
    """A sentence when the judge in use agrees less with the experts than the base judge does,
    both measured on the current held-out traces both have scores on; else None."""
    if promoted is None or base is None or promoted == base:
        return None
    mine, theirs = stored.get(promoted, {}), stored.get(base, {})
    common = [t for t in sample_ids if t in mine and t in theirs]
    if not common:
        return None
    paired = intervals.paired_bootstrap(
        settings, [[labels.normalize(settings, consensus[t].value)] for t in common],
        [theirs[t] for t in common], [mine[t] for t in common],
        settings.bootstrap_resamples, settings.interval_min_traces,
    )
    before, after = paired.before["kappa"].value, paired.after["kappa"].value
    if after is None or before is None or after >= before:
        return None
    return (
        f"the judge in use (v{promoted}) agrees less with the experts than the base judge (v{base}) on the "
        f"current held-out labels: kappa {after:.3f} vs {before:.3f} on {len(common)} of {len(sample_ids)} "
        f"sampled held-out traces (difference {paired.difference['kappa'].text()}); re-align or promote v{base} again"
    )
