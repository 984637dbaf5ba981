"""The engineer in the Dagster UI asks "why did the sensor not re-align?": the tick list answers.

sme_labels_sensor returns a skip reason on every tick that requests nothing (how many labels
wait, how many are needed, or which run is in flight). Dagster keeps it with the tick and shows
it as the tooltip of the tick's "0 runs requested" tag (the sensor page's latest tick and its
tick history); this scenario reads it there.
"""

import re

import pytest

from tests.browser.support import SENSOR

pytestmark = pytest.mark.browser


def test_the_sensors_skip_reason_is_visible_in_the_tick_list(stack, page):
    from playwright.sync_api import expect

    stack.wait_sensor_idle()  # a finished tick that requested nothing, with its reason
    reason = next(t["skipReason"] for t in stack.sensor_state()["ticks"] if t["status"] == "SKIPPED" and t["skipReason"])
    assert re.match(r"\d+ new SME label\(s\) waiting, \d+ needed to re-align", reason), reason

    page.goto(f"{stack.dagster_url}/locations/judgeloop/sensors/{SENSOR}")
    expect(page.get_by_text(SENSOR).first).to_be_visible()
    skipped = page.get_by_text("0 runs requested", exact=True).first
    expect(skipped).to_be_visible()
    skipped.hover()
    # The tag's tooltip is the sensor's own sentence: the numbers, not just "0 runs requested".
    expect(page.get_by_text(re.compile(r"new SME label\(s\) waiting, \d+ needed to re-align")).first).to_be_visible()
