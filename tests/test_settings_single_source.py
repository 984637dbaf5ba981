"""One Settings object decides: no other module reads judgeloop's settings from the environment."""

import re
from pathlib import Path

from judgeloop.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
READS = re.compile(r"""(os\.environ\.get\(|os\.environ\[|getenv\()\s*f?["']JUDGELOOP_""")


def test_only_settings_reads_judgeloop_variables():
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("judgeloop", "judgeloop_assets", "sensors")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name != "settings.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if READS.search(line)
    ]
    assert offenders == []


def test_sensor_interval_comes_from_the_settings_it_is_built_with():
    from sensors.sme_labels_sensor import build_sme_labels_sensor

    assert build_sme_labels_sensor(load_settings(sensor_interval_seconds=7)).minimum_interval_seconds == 7


def test_mlflow_ui_url_is_a_setting(monkeypatch):
    monkeypatch.setenv("JUDGELOOP_MLFLOW_UI_URL", "http://mlflow.example:8080/")
    monkeypatch.setenv("JUDGELOOP_TRACKING_URI", "http://127.0.0.1:5999")
    assert load_settings().resolved_mlflow_ui_url == "http://mlflow.example:8080"
    monkeypatch.delenv("JUDGELOOP_MLFLOW_UI_URL")
    assert load_settings().resolved_mlflow_ui_url == "http://127.0.0.1:5999"
