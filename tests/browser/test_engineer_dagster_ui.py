"""Scenario 1, the engineer in the Dagster UI: the whole asset graph, Materialize all, the aligned judge's numbers.

Why the sensor is paused for this scenario: labels released while sme_labels_sensor runs start
a re-align run within seconds (that is its job). The manual "Materialize all" would then align
on labels the judge was already aligned on, and aligned_judge records a materialization that
skips alignment and carries no kappa_before / kappa_after. Paused, the manual run is the one
that aligns; started again afterwards, the sensor takes in what it missed (one quick run).
"""

import math
import re
import time

import pytest

from tests.browser import ui
from tests.browser.support import ALL_ASSETS, EDGES, EXTERNAL_ASSETS, RELEASED_LABELS

pytestmark = pytest.mark.browser


def test_engineer_materializes_the_graph_and_reads_the_agreement(stack, page):
    from playwright.sync_api import expect

    executable = [a for a in ALL_ASSETS if a not in EXTERNAL_ASSETS]
    with stack.sensor_paused():
        # aligned_judge needs expert labels: the demo's experts label some traces first.
        stack.ensure_labels_released()

        # The asset graph, every asset and every lineage edge drawn.
        ui.open_global_lineage(page, stack.dagster_url)
        ui.expand_all_groups(page)
        names, edges = ui.wait_for_drawn_graph(page, set(ALL_ASSETS), EDGES)
        assert names == set(ALL_ASSETS), f"unexpected assets in the graph: {sorted(names - set(ALL_ASSETS))}"
        assert edges == EDGES, f"edges not declared by judgeloop_assets: {sorted(edges - EDGES, key=str)}"
        # The UI draws what the code location declares (the same API the UI reads).
        declared = {
            (dep, name)
            for name, node in stack.asset_nodes().items()
            for dep in ("/".join(d["path"]) for d in node["dependencyKeys"])
        }
        assert declared == EDGES

        # "Materialize all" covers every asset a run can materialize: all but the external sme_labels.
        materialize_all = page.get_by_role("button", name=re.compile(r"Materialize all \(\d+\)"))
        expect(materialize_all).to_have_text(f"Materialize all ({len(executable)})")
        clicked = time.time()
        materialize_all.click()
        prefix = ui.launched_run_prefix(page)
        [run] = [r for r in stack.runs(10) if r["runId"].startswith(prefix)]
        assert run["creationTime"] >= clicked - 5
        started = time.monotonic()
        stack.wait_for_run(run["runId"])
        stack.timings["materialize_all_run"] = round(time.monotonic() - started, 1)

        # The run page says so too, with every executable asset materialized.
        page.goto(f"{stack.dagster_url}/runs/{run['runId']}")
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        expect(page.get_by_text(f"{len(executable)} assets", exact=True).first).to_be_visible()
        for asset in executable:
            latest = stack.latest_metadata(asset)
            assert latest and latest["runId"] == run["runId"], f"{asset} not materialized by the run: {latest}"
        assert not stack.materializations("sme_labels"), "sme_labels is external: no run materializes it"

        # aligned_judge's asset page: the agreement numbers and the guidelines of this run.
        page.goto(f"{stack.dagster_url}/assets/aligned_judge")
        shown = ui.metadata_rows(
            page, ["kappa_before", "kappa_after", "guidelines", "guideline_count", "labels_total", "gate"]
        )
        expected = stack.latest_metadata("aligned_judge")["metadata"]
        for key in ("kappa_before", "kappa_after"):
            value = float(shown[key])
            assert math.isfinite(value) and -1.0 <= value <= 1.0, shown
            assert value == pytest.approx(expected[key], abs=5e-3), (key, shown[key], expected[key])
        assert int(shown["labels_total"]) == expected["labels_total"] >= RELEASED_LABELS
        assert int(shown["guideline_count"]) == expected["guideline_count"] >= 1
        guidelines = [line.lstrip("- ").strip() for line in expected["guidelines"].splitlines() if line.strip()]
        assert guidelines and all(g.split(":")[0] in shown["guidelines"] for g in guidelines), shown["guidelines"]
        # The run's own gate sentence: measured, or nothing to promote when the labels were
        # already aligned on by an earlier run (never an older run's numbers).
        assert "held-out kappa" in shown["gate"] or shown["gate"].startswith("nothing to promote"), shown["gate"]
