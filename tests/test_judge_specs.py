"""A judges file lists one judge per quality dimension; it is checked whole at load, and its first
problem is one error naming the file, the judge and the field. Without one, the single-judge
settings mean a file of one judge."""

import subprocess
import sys

import pytest

from judgeloop.judging import judge_specs, judges
from judgeloop.settings import FeedbackType, load_settings, settings_without_judges_file

TWO_JUDGES_TOML = '''
[[judges]]
name = "answer_quality"
instructions = "Rate how well the answer in {{ outputs }} addresses {{ inputs }}."
scale_min = 1
scale_max = 4

[[judges]]
name = "answer_acceptable"
instructions = "Is the answer in {{ outputs }} acceptable for {{ inputs }}?"
feedback_type = "pass_fail"
model = "fake:/strict"
label_threshold = 10
gate_margin = 0.05
weight = 2
reviewers = ["alice"]
'''

TWO_JUDGES_YAML = '''
judges:
  - name: answer_quality
    instructions: "Rate how well the answer in {{ outputs }} addresses {{ inputs }}."
  - name: tone
    instructions: "Is the tone of {{ outputs }} right?"
    feedback_type: categorical
    categories: [rude, neutral, warm]
'''


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_toml_file_of_two_judges_gives_each_its_own_settings(home, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_JUDGES_FILE", str(_file(tmp_path, "judges.toml", TWO_JUDGES_TOML)))
    settings = settings_without_judges_file()
    quality, acceptable = judge_specs.load(settings)
    assert (quality.name, acceptable.name) == ("answer_quality", "answer_acceptable")
    per_judge = judge_specs.settings_for(settings, acceptable)
    assert per_judge.judge_name == "answer_acceptable" and per_judge.feedback_type == FeedbackType.PASS_FAIL
    assert (per_judge.judge_model, per_judge.label_threshold, per_judge.gate_margin, per_judge.reviewers) == (
        "fake:/strict", 10, 0.05, ["alice"])
    assert "acceptable" in judges.full_instructions(per_judge)
    # A judge that sets nothing of its own keeps the deployment's.
    default = judge_specs.settings_for(settings, quality)
    assert (default.judge_model, default.label_threshold, default.gate_margin) == (
        settings.judge_model, settings.label_threshold, settings.gate_margin)
    assert settings.judge_name == "answer_quality" and settings.label_threshold != 10  # the original is untouched


def test_a_yaml_file_reads_the_same_way(home, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_JUDGES_FILE", str(_file(tmp_path, "judges.yaml", TWO_JUDGES_YAML)))
    quality, tone = judge_specs.load(settings_without_judges_file())
    assert tone.feedback_type == FeedbackType.CATEGORICAL and tone.categories == ("rude", "neutral", "warm")
    assert quality.feedback_type == FeedbackType.LIKERT


def test_without_a_file_the_single_judge_settings_are_one_judge(home, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_JUDGE_NAME", "helpfulness")
    monkeypatch.setenv("JUDGELOOP_SCALE_MAX", "5")
    settings = load_settings()
    (only,) = judge_specs.load(settings)
    assert (only.name, only.scale_max) == ("helpfulness", 5)
    assert judge_specs.settings_for(settings, only).model_dump() == settings.model_dump()


@pytest.mark.parametrize("replace, expected", [
    (("scale_max = 4", 'scale_max = "four"'), "judge 'answer_quality' (entry 1), field 'scale_max'"),
    (("scale_max = 4", "scale_max = 1"), "judge 'answer_quality' (entry 1), field '(the judge as a whole)': scale_min (1) must be below"),
    (('model = "fake:/strict"', 'model = "sk-live-123"'), "judge 'answer_acceptable' (entry 2), field 'model'"),
    (('"answer_acceptable"', '"answer_quality"'), "judge 'answer_quality' (entry 2), field 'name': 'answer_quality' is listed twice"),
    (('"answer_acceptable"', '"answer acceptable!"'), "judge 'answer acceptable!' (entry 2), field 'name': must start with a letter"),
    (("label_threshold = 10", "label_threshold = 0"), "judge 'answer_acceptable' (entry 2), field 'label_threshold'"),
    (("weight = 2", "wieght = 2"), "judge 'answer_acceptable' (entry 2), field 'wieght': Extra inputs"),
    (("Is the answer in {{ outputs }} acceptable for {{ inputs }}?", "Is the answer acceptable?"), "judge 'answer_acceptable' (entry 2), field 'instructions': must reference"),
])
def test_a_bad_field_is_one_error_naming_the_judge_and_the_field(home, tmp_path, monkeypatch, replace, expected):
    path = _file(tmp_path, "judges.toml", TWO_JUDGES_TOML.replace(*replace))
    monkeypatch.setenv("JUDGELOOP_JUDGES_FILE", str(path))
    with pytest.raises(judge_specs.JudgesFileError) as error:
        judge_specs.load(settings_without_judges_file())
    assert str(error.value).startswith(f"judges file {path}: ")
    assert expected in str(error.value), str(error.value)
    if "model" in expected:
        assert "sk-live-123" not in str(error.value)  # a value typed there may be a credential


@pytest.mark.parametrize("name, text, expected", [
    ("judges.toml", "", "no judges"),
    ("judges.toml", "[[judges]\n", "not valid TOML"),
    ("judges.yaml", "judges: [name: x", "not valid YAML"),
    ("judges.json", "{}", "name it .toml, .yaml or .yml"),
    ("judges.yaml", "judges:\n  - just a string\n", "entry 1: expected a table of fields"),
])
def test_an_unusable_file_is_named(home, tmp_path, monkeypatch, name, text, expected):
    monkeypatch.setenv("JUDGELOOP_JUDGES_FILE", str(_file(tmp_path, name, text)))
    with pytest.raises(judge_specs.JudgesFileError, match=expected):
        load_settings()  # every command, sensor and run loads its settings so: refused before anything runs


def test_the_judges_command_lists_them_and_refuses_a_bad_file(home, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_JUDGES_FILE", str(_file(tmp_path, "judges.toml", TWO_JUDGES_TOML)))
    listed = subprocess.run([sys.executable, "-m", "judgeloop.cli", "judges"], capture_output=True, text=True)
    assert "answer_acceptable: pass_fail" in listed.stdout and "threshold 10" in listed.stdout
    assert listed.returncode == 2 and "one judge per deployment" in listed.stdout
    monkeypatch.setenv("JUDGELOOP_JUDGES_FILE", str(_file(tmp_path, "bad.toml", TWO_JUDGES_TOML.replace("weight = 2", "weight = -1"))))
    refused = subprocess.run([sys.executable, "-m", "judgeloop.cli", "judges"], capture_output=True, text=True)
    assert refused.returncode == 2 and "field 'weight'" in refused.stderr


def test_a_file_of_one_judge_sets_the_loops_judge_and_several_are_refused_by_name(home, tmp_path, monkeypatch):
    one = TWO_JUDGES_TOML[TWO_JUDGES_TOML.index("[[judges]]", 10):]  # answer_acceptable alone
    monkeypatch.setenv("JUDGELOOP_JUDGES_FILE", str(_file(tmp_path, "one.toml", one)))
    monkeypatch.setenv("JUDGELOOP_JUDGE_NAME", "ignored_when_a_file_names_the_judge")
    settings = load_settings()
    assert (settings.judge_name, settings.feedback_type, settings.label_threshold) == ("answer_acceptable", FeedbackType.PASS_FAIL, 10)
    monkeypatch.setenv("JUDGELOOP_JUDGES_FILE", str(_file(tmp_path, "two.toml", TWO_JUDGES_TOML)))
    with pytest.raises(judge_specs.JudgesFileError, match=r"lists 2 judges \(answer_quality, answer_acceptable\)"):
        load_settings()
    refused = subprocess.run([sys.executable, "-m", "judgeloop.cli", "status"], capture_output=True, text=True)
    assert refused.returncode == 2 and "lists 2 judges" in refused.stderr and "Traceback" not in refused.stderr
