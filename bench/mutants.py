"""Break each guarded feature on purpose and check that the tests named after it fail.

Each mutation is a textual patch of one source file, applied to a throwaway copy of the
repository (the working tree is never modified), followed by only the tests that should catch
it. A mutation whose tests still pass SURVIVED: the feature can be removed without any test
noticing; one whose tests time out counts as not caught either. Prints a table, one PASS/FAIL line, and a JSON line; exits 1 when a mutation
survived (CI runs it with CI=true), 0 otherwise.

    .venv/bin/python bench/mutants.py                 # every mutation
    .venv/bin/python bench/mutants.py --only split    # the mutations whose name contains "split"
    .venv/bin/python bench/mutants.py --list
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", ".judgeloop", "__pycache__", ".pytest_cache", "mlruns", "*.db")


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    patches: tuple[tuple[str, str], ...]  # (exact text, replacement), each must occur exactly once
    tests: tuple[str, ...]  # pytest node ids that must fail


# Fastest first: pytest stops at the first failure (-x).
VALIDITY_TESTS = (
    "tests/test_labels.py::test_usable_never_keeps_an_invalid_label",
    "tests/test_labels.py::test_latest_per_reviewer_never_keeps_an_invalid_label",
    "tests/test_sme_labels_sensor.py::test_an_override_by_another_reviewer_counts_once",
    "tests/test_labels.py::test_overridden_and_updated_labels",
)
USABLE_FILTER = ("        if not label.valid:\n            continue\n        reason = check_value", "        reason = check_value")
LATEST_FILTER = ("    for label in found:\n        if not label.valid:\n            continue\n", "    for label in found:\n")

MUTATIONS = (
    Mutation("usable() keeps invalid labels", "judgeloop/sme_labels/labels.py", (USABLE_FILTER,), VALIDITY_TESTS),
    Mutation("latest_per_reviewer keeps invalid labels", "judgeloop/sme_labels/labels.py", (LATEST_FILTER,), VALIDITY_TESTS),
    Mutation("both validity filters removed", "judgeloop/sme_labels/labels.py", (USABLE_FILTER, LATEST_FILTER), VALIDITY_TESTS),
    Mutation(
        "realign_judge selects aligned_judge only",
        "sensors/sme_labels_sensor.py",
        (('dg.AssetSelection.assets("aligned_judge").downstream()', 'dg.AssetSelection.assets("aligned_judge")'),),
        ("tests/test_sme_labels_sensor.py::test_sensor_targets_the_realign_job_with_everything_downstream",),
    ),
    Mutation(
        "live_agreement back in the realign_judge run",
        "sensors/sme_labels_sensor.py",
        (('dg.AssetSelection.assets("aligned_judge").downstream()', 'dg.AssetSelection.assets("aligned_judge", "live_agreement").downstream()'),),
        (
            "tests/test_live_agreement_off_the_path.py::test_the_realign_job_runs_only_what_decides_the_promotion_and_what_follows_it",
            "tests/test_live_agreement_off_the_path.py::test_a_hanging_or_failing_live_agreement_neither_delays_nor_blocks_promotion",
        ),
    ),
    Mutation(
        "a run aligns on labels past the range it was handed",
        "judgeloop/sme_labels/labels.py",
        (("    if up_to is not None:\n        newest = [", "    if False:\n        newest = ["),),
        ("tests/test_run_label_range.py::test_a_run_aligns_on_the_labels_up_to_the_range_it_was_handed",),
    ),
    Mutation(
        "labels stamped in the past never counted as waiting",
        "judgeloop/sme_labels/waiting.py",
        (("        grown = max(0, current - counted)\n", "        grown = 0\n"),),
        ("tests/test_sme_labels_sensor.py::test_a_label_stamped_in_the_past_is_counted_as_waiting",),
    ),
    Mutation(
        "label sensor ignores a pushed re-alignment",
        "sensors/sme_labels_sensor.py",
        (("    if pushed:\n", "    if False:\n"),),
        ("tests/test_label_push.py::test_the_sensor_takes_a_pushed_run_as_its_own",),
    ),
    Mutation(
        "agreement gate check non-blocking",
        "judgeloop_assets/assets/alignment.py",
        (("            blocking=True,\n            description=(\n                \"Blocks a new judge", "            blocking=False,\n            description=(\n                \"Blocks a new judge"),),
        ("tests/test_alignment_asset.py::test_gate_blocks_a_worse_judge",),
    ),
    Mutation(
        "gate margin doubled",
        "judgeloop/judging/gate.py",
        (("    if after < before - margin:", "    if after < before - 2 * margin - 0.01:"),),
        ("tests/test_split_and_agreement.py::test_gate_margin_at_its_boundary",),
    ),
    Mutation(
        "default gate margin doubled",
        "judgeloop/settings.py",
        (("        0.0, ge=0, description=\"Tolerance:", "        0.05, ge=0, description=\"Tolerance:"),),
        ("tests/test_split_and_agreement.py::test_default_gate_margin_is_the_documented_one",),
    ),
    Mutation(
        "agreement measured on the alignment split",
        "judgeloop/judging/alignment.py",
        (("for t in heldout_ids}, settings.heldout_max)", "for t in align_ids}, settings.heldout_max)"),),
        ("tests/test_alignment_asset.py::test_agreement_is_measured_on_heldout_traces_only",),
    ),
    Mutation(
        "run config may override tracking_uri and gate_margin",
        "judgeloop/settings.py",
        (('RUN_CONFIG_FIELDS = ("experiment_name",', 'RUN_CONFIG_FIELDS = ("tracking_uri", "gate_margin", "experiment_name",'),),
        ("tests/test_run_config_limits.py",),
    ),
    Mutation(
        "the gate never blocks a judge measured worse",
        "judgeloop/judging/gate.py",
        (("    if after < before - margin:", "    if False:"),),
        ("tests/test_scores_and_gate.py::test_a_judge_worse_by_construction_is_blocked",),
    ),
    Mutation(
        "the gate ignores intervals (never says better with confidence)",
        "judgeloop/judging/gate.py",
        (("    if diff is not None and diff.low > 0:", "    if False:"),),
        ("tests/test_scores_and_gate.py::test_a_judge_as_good_or_better_passes",),
    ),
    Mutation(
        "an unmeasured judge may be promoted",
        "judgeloop/judging/gate.py",
        (("        if scored < min_scored:", "        if False:"),),
        ("tests/test_scores_and_gate.py::test_an_unmeasured_judge_is_never_promoted",),
    ),
    Mutation(
        "held-out sample not capped",
        "judgeloop/judging/sampling.py",
        (("    return sorted(chosen)", "    return sorted(heldout_values)"),),
        ("tests/test_scores_and_gate.py::test_heldout_sample_is_capped_stable_and_stratified",),
    ),
    Mutation(
        "stored judge scores not reused",
        "judgeloop/judging/scores.py",
        (("    if version is not None:\n        for trace_id in traces:", "    if False:\n        for trace_id in traces:"),),
        ("tests/test_scores_and_gate.py::test_a_second_measurement_pays_only_for_new_traces",),
    ),
    Mutation(
        "the evaluation's judge scores are not kept as the base version's",
        "judgeloop/tracing/traces.py",
        (("    if judge_version is not None:\n        scores.adopt(", "    if False:\n        scores.adopt("),),
        ("tests/test_scores_and_gate.py::test_the_evaluations_scores_are_reused_by_the_version_that_made_them",),
    ),
    Mutation(
        "prompt comparison counts unparseable answers",
        "judgeloop/prompt_optimization/optimization.py",
        (("        if reason:\n            log.warning(\"no score on", "        if False:\n            log.warning(\"no score on"),),
        ("tests/test_scores_and_gate.py::test_prompt_comparison_leaves_failed_calls_out_instead_of_counting_zero",),
    ),
    Mutation(
        "live agreement batch ignores the watermark",
        "judgeloop/judging/live_agreement.py",
        (("if label.key > mark][-window:]", "][-window:]"),),
        ("tests/test_live_agreement.py",),
    ),
    Mutation(
        "missing usage counted as zero tokens",
        "judgeloop/model_calls/usage.py",
        (("            if counted is None:", "            if False:"),),
        ("tests/test_usage.py::test_known_prices_and_missing_usage",),
    ),
    Mutation(
        "a blocked version is registered again on the same labels",
        "judgeloop/judging/alignment.py",
        (("    version = None if force else judges.aligned_version_for(", "    version = None if True else judges.aligned_version_for("),),
        ("tests/test_several_experts.py::test_same_alignment_labels_reuse_the_unpromoted_version",),
    ),
    Mutation(
        "GEPA handing production back after failed calls is remembered",
        "judgeloop/prompt_optimization/optimization.py",
        (("            failed = calls[\"completion_failed\"] + calls[\"embedding_failed\"] + unscored[0]", "            failed = 0"),),
        ("tests/test_prompt_optimization.py::test_an_unchanged_prompt_after_failed_calls_is_not_remembered",),
    ),
    Mutation(
        "split uses Python's salted hash()",
        "judgeloop/judging/split.py",
        (
            (
                '    digest = hashlib.sha256(trace_id.encode()).digest()\n    return int.from_bytes(digest[:8], "big") / 2**64',
                "    return (hash(trace_id) % 2**61) / 2**61",
            ),
        ),
        ("tests/test_split_and_agreement.py::test_split_is_pinned_to_known_values_across_processes",),
    ),
    Mutation(
        "run config may read the environment",
        "judgeloop_assets/resources.py",
        (("        if fields:\n            raise LaunchRefusedError(", "        if False:\n            raise LaunchRefusedError("),),
        ("tests/test_run_config_secrets.py::test_a_run_config_value_read_from_the_environment_is_refused_unread",),
    ),
    Mutation(
        "litellm calls keep litellm's own retries",
        "judgeloop/model_calls/llm_limits.py",
        (('    bounded["num_retries"] = 0\n', '    bounded["num_retries"] = kwargs.get("num_retries", 2)\n'),),
        ("tests/test_llm_bounds.py::test_a_completion_is_tried_once_plus_the_configured_retries",),
    ),
    Mutation(
        "a second up takes the state folder",
        "judgeloop/commands/up.py",
        (("            stack_lock.acquire()\n", ""),),
        ("tests/test_one_stack_per_state_folder.py::test_a_second_up_on_a_folder_in_use_refuses_and_touches_nothing",),
    ),
    Mutation(
        "sensor requests a second run for labels a push took while it counted",
        "sensors/sme_labels_sensor.py",
        (("    late = active_realign_runs(context.instance)\n", "    late = []\n"),),
        ("tests/test_label_push.py::test_a_run_pushed_while_the_sensor_counts_is_taken_not_doubled",),
    ),
    Mutation(
        "sensor keeps a cursor from the future",
        "sensors/sme_labels_sensor.py",
        (("    state, repair = waiting.RealignState.decode(context.cursor).repaired(now)\n",
          "    state, repair = waiting.RealignState.decode(context.cursor), None\n"),),
        ("tests/test_what_a_launcher_cannot_change.py::test_a_cursor_from_the_future_is_repaired_and_hides_no_label",),
    ),
)

DATABRICKS_TESTS = "tests/test_databricks_workspace.py::"
MUTATIONS += (
    Mutation(
        "Databricks label reader never reconciles",
        "judgeloop/workspace/databricks.py",
        (("queue_id or tick % max(1, self.settings.label_reconcile_ticks) == 0", "queue_id"),),
        (DATABRICKS_TESTS + "test_databricks_labels_are_read_from_the_queue_incrementally",),
    ),
    Mutation(
        "Databricks label reader re-reads every queued trace each tick",
        "judgeloop/workspace/databricks.py",
        (("changed = [i for i in items if full or", "changed = [i for i in items if True or"),),
        (DATABRICKS_TESTS + "test_databricks_labels_are_read_from_the_queue_incrementally",),
    ),
    Mutation(
        "Databricks label check trusts the question title only",
        "judgeloop/workspace/databricks.py",
        (("foreign = sorted(n for n in names if", "foreign = sorted(n for n in [] if"),),
        (DATABRICKS_TESTS + "test_databricks_label_check_reads_the_labels_that_arrived",),
    ),
    Mutation(
        "Databricks label import leaves queue items pending",
        "judgeloop/workspace/databricks.py",
        (("                rq.set_review_queue_item_status(experiment_id, queue_id, item.item_id, \"COMPLETE\")\n", ""),),
        (DATABRICKS_TESTS + "test_databricks_label_files_and_status",),
    ),
    Mutation(
        "a locked sqlite write is not tried again",
        "judgeloop/mlflow_internals/sqlite_store.py",
        (("            if attempt == retries or not is_locked_error(exc):\n", "            if True:\n"),),
        ("tests/test_sqlite_store.py::test_a_write_waiting_for_another_writers_lock_is_tried_again",),
    ),
    Mutation(
        "the litellm import hook runs only the first wrapper asked for",
        "judgeloop/mlflow_internals/litellm_hooks.py",
        (("                for configure in list(_AFTER_IMPORT):\n", "                for configure in list(_AFTER_IMPORT)[:1]:\n"),),
        ("tests/test_mlflow_internals.py::test_litellm_calls_are_counted_and_bounded_when_litellm_is_imported_after_both_asked",),
    ),
    Mutation(
        "the sqlite store keeps its rollback journal",
        "judgeloop/stack/store.py",
        (("        if sqlite_store.use_wal(settings.resolved_tracking_uri):", "        if False:"),),
        ("tests/test_sqlite_store.py::test_connect_puts_the_store_in_wal_mode",),
    ),
)

MUTATIONS += (
    Mutation(
        "gate blocks only a judge worse with confidence",
        "judgeloop/judging/gate.py",
        (("    if after < before - margin:", "    if diff is not None and diff.high < -margin or diff is None and after < before - margin:"),),
        ("tests/test_scores_and_gate.py::test_a_judge_measured_worse_within_the_noise_is_still_blocked",),
    ),
    Mutation(
        "held-out sample biased toward the lowest ratings",
        "judgeloop/judging/sampling.py",
        (("    for s, ids in strata.items():\n        chosen.extend(sorted(ids, key=rank)[: share[s]])\n    return sorted(chosen)",
          "    for s, ids in sorted(strata.items()):\n        chosen.extend(sorted(ids, key=rank))\n    return sorted(chosen[:cap])"),),
        ("tests/test_scores_and_gate.py::test_the_samples_kappa_estimates_the_whole_heldout_kappa",),
    ),
    Mutation(
        "stored scores reused counted as calls",
        "judgeloop/judging/alignment.py",
        (('        "measure_judge_calls": before_scores.paid + after_scores.paid,\n',
          '        "measure_judge_calls": before_scores.paid + after_scores.paid,\n        "measure_judge_scores_reused": before_scores.reused,\n'),),
        ("tests/test_reported_calls.py::test_reported_calls_equal_the_calls_the_server_received",),
    ),
    Mutation(
        "corrected labels keep the guidelines learned from their old value",
        "judgeloop/judging/alignment.py",
        (("            learner, withdrawn = withdraw(previous, changed)", "            learner, withdrawn = previous, []"),),
        ("tests/test_corrected_labels.py::test_a_corrected_label_withdraws_the_guideline_learned_from_its_old_value",),
    ),
    Mutation(
        "held-out traces reordered by priority",
        "judgeloop/sme_labels/queue_order.py",
        (("        heldout_order(heldout_ids, seed),\n", "        alignment_order(heldout_ids, priority or {}, questions or {}, seed),\n"),),
        ("tests/test_queue_order.py::test_heldout_stream_order_is_the_same_whatever_the_priorities",),
    ),
    Mutation(
        "review queue window not re-ranked after a promotion",
        "judgeloop_assets/assets/alignment.py",
        (("refresh_queue(experiment_id, rerank=newly_promoted)", "refresh_queue(experiment_id, rerank=False)"),),
        ("tests/test_queue_window.py::test_the_pending_window_reranks_after_a_realignment_and_keeps_the_heldout_order",),
    ),
)

OWN_TRAFFIC = (
    Mutation(
        "prompt optimization without expectations runs instead of waiting",
        "judgeloop/prompt_optimization/optimization.py",
        (("    if waits:\n", "    if False:\n"),),
        ("tests/test_expectations_wait.py::test_a_realignment_without_expectations_succeeds_and_the_prompt_waits",),
    ),
    Mutation(
        "a re-run of tagged_traces pays again for scores an interrupted run wrote",
        "judgeloop/tracing/traces.py",
        (("    recovered = recover_scores(judge.name, untagged, judge_version, report)", "    recovered = set()"),),
        ("tests/test_new_traffic.py::test_an_interrupted_tagging_run_leaves_nothing_orphaned_and_a_rerun_pays_only_for_the_rest",),
    ),
    Mutation(
        "traces import writes the good rows of a file with a bad one",
        "judgeloop/tracing/trace_files.py",
        (("    if bad:\n        return report\n", ""),),
        ("tests/test_traces_import.py::test_bad_rows_are_reported_by_line_and_nothing_is_written",),
    ),
)
MUTATIONS += OWN_TRAFFIC


def apply(root: Path, mutation: Mutation) -> None:
    (root / mutation.file).write_text(patched(root, mutation))


def patched(root: Path, mutation: Mutation) -> str:
    text = (root / mutation.file).read_text()
    for old, new in mutation.patches:
        count = text.count(old)
        if count != 1:
            # The source moved on: the mutation no longer describes the code. Fail loudly rather
            # than report a mutation that was never applied as "caught".
            raise SystemExit(f"{mutation.name}: expected one occurrence in {mutation.file}, found {count}:\n{old}")
        text = text.replace(old, new)
    return text


def run_tests(root: Path, tests: tuple[str, ...], timeout: int) -> tuple[bool | None, str]:
    """(passed, tail of output) of pytest on ``tests`` inside ``root``; passed is None on a timeout."""
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    try:
        out = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    return out.returncode == 0, (out.stdout + out.stderr).strip().splitlines()[-1:][0] if (out.stdout + out.stderr).strip() else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run only mutations whose name contains this text")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per mutation's test run")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested side by side (each in its own copy)")
    parser.add_argument("--no-baseline", action="store_true", help="skip running the targeted tests unmutated first")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only.lower() in m.name.lower()]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.file} -> {' '.join(m.tests)}")
        return 0

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="judgeloop-mutants-") as tmp:
        pristine = Path(tmp) / "pristine"
        shutil.copytree(REPO, pristine, ignore=COPY_IGNORE)
        if not args.no_baseline:
            # A test that fails on the unmutated code would make every mutation look caught.
            targeted = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            ok, tail = run_tests(pristine, targeted, args.timeout * 2)
            if ok is not True:
                print(f"FAIL: the targeted tests fail without any mutation: {tail}")
                print(json.dumps({"benchmark": "mutants", "baseline_passed": False, "pass": False}))
                return 1
        def attempt(index: int, mutation: Mutation) -> dict:
            work = Path(tmp) / f"mutant-{index}"
            shutil.copytree(pristine, work)
            apply(work, mutation)
            t0 = time.monotonic()
            passed, tail = run_tests(work, mutation.tests, args.timeout)
            shutil.rmtree(work, ignore_errors=True)
            seconds = round(time.monotonic() - t0, 1)
            # A timeout is no verdict: the tests neither failed nor passed. It counts against the run.
            caught = passed is False
            verdict = "caught" if caught else ("TIMEOUT" if passed is None else "SURVIVED")
            print(f"{verdict:8}  {seconds:7.1f}s  {mutation.name}  ({tail})", flush=True)
            return {"mutation": mutation.name, "caught": caught, "result": verdict, "seconds": seconds,
                    "tests": list(mutation.tests), "pytest": tail}

        for mutation in chosen:  # every patch must still match before any test time is spent
            patched(pristine, mutation)
        # Each mutant lives in its own copy, so mutants can run side by side (--jobs).
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(attempt, range(len(chosen)), chosen))

    survived = [r["mutation"] for r in results if not r["caught"]]
    total = round(time.monotonic() - started, 1)
    print()
    print(f"{'mutation':48} result")
    for r in results:
        print(f"{r['mutation']:48} {r['result']}")
    print(f"{'PASS' if not survived else 'FAIL'}: {len(results) - len(survived)}/{len(results)} mutations caught in {total} s"
          + (f"; survived: {', '.join(survived)}" if survived else ""))
    print(json.dumps({"benchmark": "mutants", "mutations": results, "caught": len(results) - len(survived), "total": len(results),
                      "seconds": total, "pass": not survived}))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
