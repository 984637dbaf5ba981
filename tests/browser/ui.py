"""What a person does in the Dagster and MLflow UIs, as Playwright steps.

Selectors, and why these ones (Dagster 1.13.27 webserver, MLflow 3.17.2, headless Chromium):
- Dagster has almost no test ids. Buttons and menu items are found by role and name
  ("Materialize all (7)", "Expand all groups"), tabs by name; the asset graph is an SVG in
  which every asset is a <foreignObject> holding an element of CSS-module class
  ``AssetNode_assetName__*`` (its name) and every edge a <path> with an arrow marker, so the
  drawn lineage is read from their geometry. The graph only renders nodes inside the
  viewport: read it at the zoom-to-fit Dagster applies after each layout change.
- MLflow marks its controls with ``data-component-id`` (stable across builds): review-queue
  list, focused review, numeric input, rationale, Submit.
- Both UIs open an overlay on a fresh browser profile: Dagster's "Join the Dagster community"
  dialog and MLflow's "Got it" popover. Locator handlers dismiss them whenever they show up.
"""

import re
from urllib.parse import parse_qs, urlsplit

# MLflow review queue (3.17.2)
QUEUE_HEADER = '[data-component-id="mlflow.experiment-review-queue.list.header"]'
QUEUE_STATUS_TAG = '[data-component-id="mlflow.experiment-review-queue.list.status-tag"]'
START_REVIEW = '[data-component-id="mlflow.experiment-review-queue.list.start-review"]'
NUMERIC = '[data-component-id="mlflow.experiment-review-queue.focused-review.question.numeric"]'
# A categorical schema (judgeloop's small integer scales) shows a dropdown instead of the number box.
CATEGORICAL = '[data-component-id="mlflow.experiment-review-queue.focused-review.question.categorical"]'
RATIONALE = '[data-component-id="mlflow.experiment-review-queue.focused-review.rationale"]'
SUBMIT = '[data-component-id="mlflow.experiment-review-queue.focused-review.complete"]'
GOT_IT = '[data-component-id="mlflow.detect_issues.guidance.got_it"]'
ASSISTANT_CLOSE = '[data-component-id="mlflow.assistant.chat_panel.close"]'

# Geometry of the Dagster asset graph: asset nodes and edges, in graph coordinates.
_GRAPH_JS = """
() => {
  const nodes = [...document.querySelectorAll('svg foreignObject')]
    .map(f => ({f, label: f.querySelector('[class*="AssetNode_assetName"]')}))
    .filter(({label}) => label)  // group outlines and headers have no asset name
    .map(({f, label}) => ({name: label.textContent.trim(), x: +f.getAttribute('x'), y: +f.getAttribute('y'),
                           w: +f.getAttribute('width'), h: +f.getAttribute('height')}));
  const edges = [...document.querySelectorAll('svg path[marker-end]')].map(p => {
    const length = p.getTotalLength();
    const a = p.getPointAtLength(0), b = p.getPointAtLength(length);
    return {x1: a.x, y1: a.y, x2: b.x, y2: b.y};
  });
  return {nodes, edges};
}
"""


def install_overlay_handlers(page) -> None:
    """Dismiss the first-visit overlays of both UIs whenever they block an action."""
    community = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
    page.add_locator_handler(community, lambda dialog: dialog.get_by_role("button", name="Skip").click())
    page.add_locator_handler(page.locator(GOT_IT), lambda button: button.click())


# --- Dagster -----------------------------------------------------------------------------
def open_global_lineage(page, dagster_url: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dagster_url}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"Materialize all \(\d+\)"))).to_be_visible()


def expand_all_groups(page) -> None:
    """Right-click on empty graph canvas -> "Expand all groups" (groups start collapsed)."""
    from playwright.sync_api import expect

    from playwright.sync_api import Error as PlaywrightError

    canvas = page.locator('[data-svg-viewport="1"]')
    expect(canvas).to_be_visible()
    # The community dialog can pop up late and its dismissal closes the context menu: retry.
    for attempt in range(4):
        box = canvas.bounding_box()
        canvas.click(button="right", position={"x": 20, "y": box["height"] - 30})
        try:
            page.get_by_role("menuitem", name="Expand all groups").click(timeout=5_000)
            return
        except PlaywrightError:
            if attempt == 3:
                raise
            page.keyboard.press("Escape")


def drawn_graph(page) -> tuple[set[str], set[tuple[str, str]]]:
    """Asset names and (upstream, downstream) edges as drawn: an edge starts on its source's
    right side and ends (arrow head) just left of its target."""
    data = page.evaluate(_GRAPH_JS)
    nodes = data["nodes"]

    def node_at(x, y, side):
        for n in nodes:
            edge_x = n["x"] + n["w"] if side == "right" else n["x"]
            if abs(x - edge_x) <= 12 and n["y"] - 1 <= y <= n["y"] + n["h"] + 1:
                return n["name"]
        return None

    edges = set()
    for e in data["edges"]:
        source, target = node_at(e["x1"], e["y1"], "right"), node_at(e["x2"], e["y2"], "left")
        edges.add((source, target))
    return {n["name"] for n in nodes}, edges


def wait_for_drawn_graph(page, names: set[str], edges: set[tuple[str, str]], timeout: float = 20):
    """Poll the SVG until it shows at least ``names`` and ``edges``, every edge joining two
    drawn assets (while the layout animates, edge ends and nodes do not line up yet)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        drawn_names, drawn_edges = drawn_graph(page)
        settled = all(source and target for source, target in drawn_edges)
        if names <= drawn_names and edges <= drawn_edges and settled:
            return drawn_names, drawn_edges
        if time.monotonic() > deadline:
            raise AssertionError(
                f"asset graph did not show the expected lineage within {timeout:.0f} s\n"
                f"missing nodes: {sorted(names - drawn_names)}\nmissing edges: {sorted(edges - drawn_edges)}\n"
                f"drawn nodes: {sorted(drawn_names)}\ndrawn edges: {sorted(drawn_edges, key=str)}"
            )
        page.wait_for_timeout(500)


def launched_run_prefix(page) -> str:
    """The "Launched run 1a2b3c4d" toast Dagster shows after a launch."""
    from playwright.sync_api import expect

    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    expect(toast.first).to_be_visible(timeout=30_000)
    return re.search(r"Launched run ([0-9a-f]{8})", toast.first.inner_text()).group(1)


def metadata_rows(page, labels: list[str]) -> dict[str, str]:
    """Values of the asset page's metadata table (columns: key, timestamp, value)."""
    from playwright.sync_api import expect

    values = {}
    for label in labels:
        row = page.locator("tr").filter(has=page.get_by_text(label, exact=True))
        expect(row.first).to_be_visible()
        value = row.first.locator("td").last
        # Markdown values (guidelines) render a moment after the row appears.
        expect(value).to_have_text(re.compile(r"\S"))
        values[label] = value.inner_text().strip()
    return values


# --- MLflow ------------------------------------------------------------------------------
def close_assistant(page) -> None:
    """The MLflow Assistant side panel opens by default and narrows the page: close it."""
    close = page.locator(ASSISTANT_CLOSE)
    if close.count() and close.first.is_visible():
        close.first.click()


def selected_item(page) -> str | None:
    """The trace open in the focused review (MLflow keeps it in the URL's ``selectedItemId``)."""
    fragment = urlsplit(page.url).fragment  # /experiments/1/review-queue?selectedQueueId=..&selectedItemId=..
    query = fragment.split("?", 1)[1] if "?" in fragment else ""
    return (parse_qs(query).get("selectedItemId") or [None])[0]


def reviewed_count(page) -> int:
    """From the focused review's progress line "k of n reviewed (p%)"."""
    text = page.get_by_text(re.compile(r"\d+ of \d+ reviewed")).first.inner_text()
    return int(re.search(r"(\d+) of \d+ reviewed", text).group(1))


def options(page, dropdown) -> list[str]:
    """Open ``dropdown`` and return the texts of its options, in order (the list stays open)."""
    from playwright.sync_api import expect

    dropdown.click()
    expect(page.get_by_role("option").first).to_be_visible()
    return [option.inner_text().strip() for option in page.get_by_role("option").all()]


def choose(page, dropdown, value: str) -> None:
    options(page, dropdown)
    page.get_by_role("option", name=value, exact=True).click()
