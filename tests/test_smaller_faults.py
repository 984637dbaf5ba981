"""Smaller faults: formula triggers OWASP lists beyond = + - @, a reviewer name longer than MLflow
keeps, Ctrl-C during a large import, and the state folder's mode when ``up`` creates it."""

import stat

import pytest

from judgeloop.sme_labels.label_files import importing
from judgeloop.sme_labels.labels import current_labels, log_label
from judgeloop.stack.servers import check_state_folder
from tests.test_label_file_safety import raw_cells, run, store  # noqa: F401  (fixture)


@pytest.mark.parametrize("lead", ["\t", "\r", "\t\r"])
def test_a_comment_starting_with_a_tab_or_carriage_return_is_exported_inert(lead, store, tmp_path, capsys):  # noqa: F811
    settings, _, (t1, *_) = store
    comment = f'{lead}=HYPERLINK("http://evil.example","click")'
    log_label(t1, settings.judge_name, 2, "rater-1", comment)
    path = tmp_path / "labels.csv"
    assert run(capsys, "labels", "export", str(path))[0] == 0
    exported = {row[0]: row[2] for row in raw_cells(path)[1:]}[t1]
    assert exported == "'" + comment  # a spreadsheet shows it as text
    code, out, err = run(capsys, "labels", "import", str(path))  # and it round-trips unchanged
    assert code == 0 and "unchanged 1" in out, err


def test_a_reviewer_name_longer_than_mlflow_keeps_is_a_bad_row_not_printed_whole(store, tmp_path, capsys):  # noqa: F811
    settings, experiment_id, (t1, t2, *_) = store
    long_name = "r" * 10_000
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,comment,reviewer\n{t1},3,fine,rater-1\n{t2},2,meh,{long_name}\n")
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code != 0
    assert "line 3" in err and "reviewer is 10,000 characters long, over the limit of 250" in err
    assert "r" * 300 not in err + out  # named by its length, not printed whole
    assert current_labels(settings, experiment_id)[0] == []  # nothing written


def test_ctrl_c_during_an_import_says_how_many_labels_were_written(store, tmp_path, capsys, monkeypatch):  # noqa: F811
    settings, experiment_id, trace_ids = store
    path = tmp_path / "labels.csv"
    path.write_text("trace_id,value,comment,reviewer\n" + "".join(f"{t},3,,r{i}\n" for i in range(3) for t in trace_ids))
    written = importing.labels_core.log_label
    calls = []

    def ctrl_c_at_the_fifth_label(*args, **kwargs):
        calls.append(args)
        if len(calls) == 5:
            # What Python's SIGINT handler raises in the main thread when the terminal sends Ctrl-C
            # (raised here, not through the signal, so it lands at this exact label every time).
            raise KeyboardInterrupt
        return written(*args, **kwargs)

    monkeypatch.setattr(importing.labels_core, "log_label", ctrl_c_at_the_fifth_label)
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 130, err
    assert f"after 4 of {3 * len(trace_ids)} change(s)" in err and "KeyboardInterrupt" in err
    assert "Re-run the same import" in err
    assert len(current_labels(settings, experiment_id)[0]) == 4


def test_up_creates_the_state_folder_owner_only(tmp_path):
    home = tmp_path / "new" / "state"
    check_state_folder(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
