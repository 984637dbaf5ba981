"""Scenario 3, lineage: optimized_prompt's asset page traces it back to the SMEs' labels and the base judge."""

import re

import pytest

from tests.browser import ui
from tests.browser.support import EDGES

pytestmark = pytest.mark.browser


def upstream_of(asset: str, edges: set[tuple[str, str]]) -> set[str]:
    found, frontier = set(), {asset}
    while frontier:
        frontier = {source for source, target in edges if target in frontier} - found
        found |= frontier
    return found


def test_optimized_prompt_lineage_reaches_sme_labels_and_base_judge(stack, page):
    from playwright.sync_api import expect

    # The graph draws only the nodes inside the viewport at Dagster's zoom-to-fit: a wide window
    # keeps the whole upstream graph (eight assets in two groups) on the canvas.
    page.set_viewport_size({"width": 2560, "height": 1440})
    page.goto(f"{stack.dagster_url}/assets/optimized_prompt")
    page.get_by_role("tab", name="Lineage").click()
    # The button's accessible name starts with its icon's name, then "Upstream".
    upstream = page.get_by_role("button", name=re.compile(r"\bUpstream$"))
    upstream.click()
    expect(upstream).to_have_attribute("aria-selected", "true")
    page.get_by_role("button", name="All", exact=True).click()  # graph depth: all the way up

    wanted = {("sme_labels", "aligned_judge"), ("aligned_judge", "optimized_prompt"), ("base_judge", "tagged_traces")}
    names, edges = ui.wait_for_drawn_graph(page, {"optimized_prompt", "sme_labels", "base_judge"}, wanted)
    assert {"sme_labels", "base_judge"} <= upstream_of("optimized_prompt", edges), sorted(edges)
    # Upstream scope: everything drawn is optimized_prompt or one of its ancestors, as declared.
    assert names == upstream_of("optimized_prompt", EDGES) | {"optimized_prompt"}, sorted(names)
    assert edges <= EDGES, sorted(edges - EDGES, key=str)
