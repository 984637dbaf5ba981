"""Label files that are safe to open in a spreadsheet, bounded, decoded by line, and imported
with progress: formula escaping, the comment limit, non-UTF-8 files, large imports."""

import csv
import io
import json

import pytest

from judgeloop.cli import main
from judgeloop.sme_labels.label_files import cells, importing
from judgeloop.sme_labels.label_files.rows import MAX_COMMENT_CHARS
from judgeloop.sme_labels.labels import current_labels, log_label
from tests.test_label_import_export import NASTY_COMMENTS, assessments


@pytest.fixture
def store(template_store):
    return template_store


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def raw_cells(path) -> list[list[str]]:
    """The cells exactly as a spreadsheet reads them (no unescaping)."""
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))


# --- formulas ---------------------------------------------------------------------------------


def test_exported_csv_has_no_cell_a_spreadsheet_runs_as_a_formula(store, tmp_path, capsys):
    settings, experiment_id, (t1, t2, t3, t4, *_) = store
    log_label(t1, settings.judge_name, 1, "rater-1", '=HYPERLINK("http://evil.example","click")')
    log_label(t2, settings.judge_name, 2, "rater-1", "+cmd|' /C calc'!A0")
    log_label(t3, settings.judge_name, 3, "@mallory", "@SUM(A1:A9)")
    log_label(t4, settings.judge_name, 4, "rater-1", "'already quoted")
    path = tmp_path / "labels.csv"
    assert run(capsys, "labels", "export", str(path))[0] == 0
    body = raw_cells(path)[1:]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in body for cell in row), body
    comments = {row[0]: row[2] for row in body}
    assert comments[t1] == '\'=HYPERLINK("http://evil.example","click")'
    assert comments[t2] == "'+cmd|' /C calc'!A0"
    assert comments[t3] == "'@SUM(A1:A9)"
    assert comments[t4] == "''already quoted"  # so import can tell the added ' from the text's own
    assert {row[0]: row[3] for row in body}[t3] == "'@mallory"
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 0 and "written 0, edited 0, unchanged 4, rejected 0" in out, err


def test_import_removes_exactly_the_escape(store, tmp_path, capsys):
    settings, experiment_id, (t1, t2, t3, t4, *_) = store
    path = tmp_path / "labels.csv"
    path.write_text(
        "trace_id,value,comment,reviewer\n"
        f"{t1},1,'=1+1,r1\n"          # escaped formula: the ' goes
        f"{t2},2,''quoted,r1\n"       # escaped ': one ' goes
        f"{t3},3,'plain,r1\n"          # a ' before ordinary text was not added by an export: kept
        f"{t4},4,-1,r1\n"              # a plain number is never escaped and comes back as it is
    )
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 0, err
    found = {label.trace_id: label.comment for label in current_labels(settings, experiment_id)[0]}
    assert found == {t1: "=1+1", t2: "'quoted", t3: "'plain", t4: "-1"}


@pytest.mark.parametrize(
    "text", ["=x", "+x", "-x", "@x", "'", "''", "'=x", "''=x", "'x", "-1", "-1.5e3", "+", "-", "x=1", "", "\t=x"]
)
def test_escape_and_unescape_are_inverse(text):
    escaped = cells.escape(text)
    assert cells.unescape(escaped) == text
    assert not escaped.startswith(("=", "+", "-", "@")) or text in ("-1", "-1.5e3")  # numbers are no formulas


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_nasty_comments_round_trip_byte_for_byte(store, tmp_path, capsys, fmt):
    settings, experiment_id, trace_ids = store
    comments = [*NASTY_COMMENTS, "'already quoted", "''twice", "'=quoted formula", "-1", "\tleading tab", "\r\n"]
    for i, comment in enumerate(comments):
        log_label(trace_ids[i % len(trace_ids)], settings.judge_name, 1 + i % 4, f"rater-{i}", comment)
    first, second = tmp_path / f"first.{fmt}", tmp_path / f"second.{fmt}"
    assert run(capsys, "labels", "export", str(first))[0] == 0
    code, out, err = run(capsys, "labels", "import", str(first))
    assert code == 0, err
    assert f"written 0, edited 0, unchanged {len(comments)}, rejected 0" in out
    assert sorted(label.comment for label in current_labels(settings, experiment_id)[0]) == sorted(comments)
    assert run(capsys, "labels", "export", str(second))[0] == 0
    assert first.read_bytes() == second.read_bytes()


# --- the comment limit --------------------------------------------------------------------------


def _write(path, fmt, rows):
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["trace_id", "value", "comment", "reviewer"])
            writer.writerows([[r["trace_id"], r["value"], r["comment"], r["reviewer"]] for r in rows])
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_one_comment_limit_for_both_formats(store, tmp_path, capsys, fmt):
    settings, experiment_id, (t1, t2, t3, *_) = store
    limit_before = csv.field_size_limit()
    path = tmp_path / f"labels.{fmt}"
    _write(path, fmt, [
        {"trace_id": t1, "value": 2, "comment": "x" * MAX_COMMENT_CHARS, "reviewer": "r1"},      # line 2 / 1: at the limit
        {"trace_id": t2, "value": 3, "comment": "y" * (MAX_COMMENT_CHARS + 1), "reviewer": "r1"},  # one over
        {"trace_id": t3, "value": 3, "comment": "z" * 200_000, "reviewer": "r1"},  # over the csv module's own default
    ])
    code, out, err = run(capsys, "labels", "import", str(path))
    first = 2 if fmt == "csv" else 1
    assert code == 1
    assert f"line {first + 1}: comment is {MAX_COMMENT_CHARS + 1:,} characters long, over the limit of {MAX_COMMENT_CHARS:,}" in err
    assert f"line {first + 2}: comment is 200,000 characters long" in err
    assert f"line {first}:" not in err and "malformed" not in err
    assert "nothing written: 2 bad row(s)" in out
    assert assessments([t1, t2, t3]) == []
    assert csv.field_size_limit() == limit_before  # the process-wide csv setting is left as found
    code, out, err = run(capsys, "labels", "import", str(path), "--allow-partial")
    assert {label.trace_id: len(label.comment) for label in current_labels(settings, experiment_id)[0]} == {
        t1: MAX_COMMENT_CHARS
    }


def test_export_keeps_a_longer_stored_comment_and_warns(store, tmp_path, capsys):
    settings, _, (t1, *_) = store
    log_label(t1, settings.judge_name, 2, "rater-1", "w" * (MAX_COMMENT_CHARS + 5))  # as the UI could store it
    path = tmp_path / "labels.jsonl"
    code, _, err = run(capsys, "labels", "export", str(path))
    assert code == 0
    assert f"warning: the comment of rater-1 on trace {t1} is {MAX_COMMENT_CHARS + 5:,} characters long" in err
    assert len(json.loads(path.read_text())["comment"]) == MAX_COMMENT_CHARS + 5


def test_the_limit_is_documented():
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    assert f"{MAX_COMMENT_CHARS:,} characters" in readme


# --- encodings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_file_that_is_not_utf8_is_refused_by_line(store, tmp_path, capsys, bom):
    _, _, (t1, t2, *_) = store
    path = tmp_path / "labels.csv"
    path.write_bytes(
        bom + b"trace_id,value,comment,reviewer\n"
        + b'%s,3,"two\nlines",r1\n' % t1.encode()
        + b"%s,2,caf\xe9 au lait,r1\n" % t2.encode()  # Latin-1, as an old spreadsheet saves it
    )
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 2
    assert "line 4: not UTF-8 (byte 0xe9 at column " in err, err
    assert "position" not in err and "codec" not in err
    assert assessments([t1, t2]) == []


# --- large files ----------------------------------------------------------------------------------


def test_a_large_import_reports_progress_per_batch(store, tmp_path, capsys, monkeypatch):
    settings, experiment_id, trace_ids = store
    monkeypatch.setattr(importing, "BATCH_SIZE", 4)
    path = tmp_path / "labels.csv"
    path.write_text(
        "trace_id,value,comment,reviewer\n"
        + "".join(f"{t},{1 + i % 4},,{r}\n" for i, (t, r) in enumerate((t, r) for t in trace_ids for r in ("r1", "r2")))
    )
    log_label(trace_ids[0], settings.judge_name, 1, "r1")  # the first row is already stored: unchanged
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 0, err
    progress = [line.split(": ", 1)[1] for line in err.splitlines() if line.startswith(f"{path}: ")]
    assert progress[0] == "read 12 row(s); checking them against the store"
    assert progress[1] == "validated 12 row(s): 12 good, 0 bad; 11 change(s) to write"
    assert [p.split(" (")[0] for p in progress[2:]] == [
        "written 4 of 11 change(s)", "written 8 of 11 change(s)", "written 11 of 11 change(s)"
    ]
    assert all(p.endswith(" labels/s)") for p in progress[2:])
    assert "written 11, edited 0, unchanged 1, rejected 0" in out
    # A file smaller than a batch stays quiet.
    monkeypatch.setattr(importing, "BATCH_SIZE", 500)
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 0 and err == "" and "unchanged 12" in out
