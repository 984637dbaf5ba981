"""Work a re-alignment left unfinished: a judge promoted, the agent prompt never optimized with it.

A re-alignment run promotes the judge and then optimizes the prompt with it. When the run is
interrupted in between (Ctrl-C, a crash, a provider outage during GEPA), the judge in use has
no prompt optimized for it; the label sensor asks this and requests the missing step.
"""

from judgeloop.settings import Settings


def unfinished_optimization(settings: Settings, experiment_id: str) -> tuple[int, str] | None:
    """``(judge version, why)`` when the promoted judge is an aligned one the prompt was never
    optimized with (by the same rule ``optimized_prompt`` uses to skip), else None."""
    from judgeloop import workspace
    from judgeloop.judging import judges
    from judgeloop.prompt_optimization import optimization, prompts

    promoted = judges.promoted_version(experiment_id)
    if promoted is None or judges.lineage(experiment_id, promoted).get("kind") != "aligned":
        return None  # the base judge: optimizing waits for the first alignment
    production = prompts.production(settings)
    if production is None:
        return None  # the foundation job has not finished: nothing to optimize yet
    # An aligned judge means the foundation ran, so the dataset already exists: this finds it.
    dataset = workspace.for_settings(settings).dataset(experiment_id)
    if optimization.already_optimized(settings, promoted, dataset.dataset_id, production):
        return None
    if optimization.dataset_waits_for_expectations(settings, dataset):
        return None  # optimized_prompt would only skip again: it waits for expectations, not for a retry
    return promoted, f"judge v{promoted} is in use but the agent prompt was never optimized with it"
