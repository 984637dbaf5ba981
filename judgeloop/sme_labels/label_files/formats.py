"""The text of a label file: CSV or JSONL records with the line each starts on."""

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from judgeloop.sme_labels.label_files.cells import escape, unescape

# trace_key: a key the trace carries itself (see ``traces``), so a file can be imported into a
# store that holds the same traces under other trace ids. Either it or trace_id names the trace.
# ``judge``: the judge (quality dimension) a label is for; a file without it means the deployment's judge.
COLUMNS = ("trace_id", "value", "comment", "reviewer", "trace_key", "judge")
REQUIRED = ("value", "reviewer")
TRACE_COLUMNS = ("trace_id", "trace_key")
FORMATS = ("csv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class LabelFileError(ValueError):
    """The file as a whole cannot be read (missing, unknown format, bad header)."""


@dataclass(frozen=True)
class RawRow:
    """One record as it stands in the file, before any check against the store."""

    line: int  # 1-based line where the record starts, as an editor shows it
    fields: dict


@dataclass(frozen=True)
class BadRow:
    line: int
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"line {self.line}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class Layout:
    """The columns of one kind of file (labels here, traces in ``judgeloop.tracing.trace_files``),
    which of them are required, any group of which one is required, and the error a file that
    cannot be read as a whole raises. CSV and JSONL are read the same way for every kind."""

    columns: tuple[str, ...]
    required: tuple[str, ...]
    one_of: tuple[str, ...] = ()
    error: type[Exception] = LabelFileError


LABELS = Layout(COLUMNS, REQUIRED, TRACE_COLUMNS)


def detect_format(path: str | Path, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise LabelFileError(f"unknown format {explicit!r}: use one of {', '.join(FORMATS)}")
        return explicit
    suffix = Path(str(path)).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise LabelFileError(
            f"cannot tell the format of {str(path)!r} from its extension: name it .csv or .jsonl, or pass --format"
        )
    return _EXTENSIONS[suffix]


def read_file(path: str | Path, fmt: str | None = None, layout: Layout = LABELS) -> tuple[list[RawRow], list[BadRow]]:
    """Records of a file of ``layout`` (default: labels) and the rows that are malformed as text."""
    fmt = detect_format(path, fmt)
    # Bytes decoded as they are: reading as text would turn every \r and \r\n, also inside a
    # quoted comment, into \n, so a comment would not come back as it was exported.
    if str(path) == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise layout.error(f"{path}: no such file") from None
        except OSError as exc:
            raise layout.error(f"{path}: cannot read it ({exc})") from None
    return parse_text(decode(data, str(path)), fmt, layout)


def decode(data: bytes, name: str) -> str:
    """The file's text; a byte that is not UTF-8 is reported by its line, as an editor shows it."""
    try:
        # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        raise LabelFileError(
            f"{name}: line {line}: not UTF-8 (byte 0x{data[offset]:02x} at column {column}); "
            "save the file as UTF-8 (in a spreadsheet: CSV UTF-8)"
        ) from None


def parse_text(text: str, fmt: str, layout: Layout = LABELS) -> tuple[list[RawRow], list[BadRow]]:
    if fmt == "csv":
        return _parse_csv(text, layout)
    if fmt == "jsonl":
        return _parse_jsonl(text, layout)
    raise layout.error(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _parse_csv(text: str, layout: Layout) -> tuple[list[RawRow], list[BadRow]]:
    # Lines end at \n only, as an editor counts them: a \r inside a quoted comment is part of
    # the comment, not a line break that would shift every later line number.
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    # The csv module refuses a field over 131,072 characters with an unhelpful error; no field
    # can be longer than the text, and the comment limit is checked per row (``rows``).
    previous_limit = csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    try:
        return _read_records(reader, layout)
    finally:
        csv.field_size_limit(previous_limit)


def _read_records(reader, layout: Layout) -> tuple[list[RawRow], list[BadRow]]:
    rows, bad = [], []
    header: list[str] | None = None
    previous_end = 0
    while True:
        start = previous_end + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            previous_end = reader.line_num
            if header is None:
                raise layout.error(f"line {start}: the header is not valid CSV ({exc})") from None
            bad.append(BadRow(start, (f"malformed CSV ({exc})",)))
            continue
        previous_end = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue  # blank line
        if header is None:
            header = [cell.strip().lower() for cell in record]
            _check_header(header, layout)
            continue
        if len(record) != len(header):
            bad.append(
                BadRow(start, (f"malformed row: {len(record)} fields, the header has {len(header)} ({', '.join(header)})",))
            )
            continue
        rows.append(RawRow(start, dict(zip(header, (unescape(cell) for cell in record)))))
    if header is None:
        raise layout.error(f"the file is empty: expected a header line {','.join(layout.columns)}")
    return rows, bad


def _check_header(header: list[str], layout: Layout) -> None:
    unknown = [name for name in header if name not in layout.columns]
    missing = [name for name in layout.required if name not in header]
    if layout.one_of and not any(name in header for name in layout.one_of):
        missing.insert(0, " or ".join(layout.one_of))
    duplicated = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(n) for n in unknown)}")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if duplicated:
        problems.append(f"repeated column(s) {', '.join(duplicated)}")
    if problems:
        raise layout.error(f"line 1: {'; '.join(problems)} (expected columns: {','.join(layout.columns)})")


def _parse_jsonl(text: str, layout: Layout) -> tuple[list[RawRow], list[BadRow]]:
    rows, bad = [], []
    # Iterating a stream splits on line ends only; str.splitlines would also split on
    # U+2028 and friends, which JSON allows unescaped inside strings.
    for number, line in enumerate(io.StringIO(text, newline=None), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(BadRow(number, (f"malformed row: not valid JSON ({exc.msg} at column {exc.colno})",)))
            continue
        if not isinstance(record, dict):
            bad.append(BadRow(number, (f"malformed row: expected a JSON object, got {type(record).__name__}",)))
            continue
        unknown = [key for key in record if key not in layout.columns]
        if unknown:
            bad.append(
                BadRow(number, (f"malformed row: unknown key(s) {', '.join(repr(k) for k in unknown)} (expected {', '.join(layout.columns)})",))
            )
            continue
        rows.append(RawRow(number, record))
    return rows, bad


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def write_rows(rows: list[dict], out: IO[str], fmt: str) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        # The csv module quotes a cell with \n but not one with a bare \r, which a reader then
        # takes for a line break: rows holding a \r are written fully quoted.
        quoting_all = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(COLUMNS)
        for row in rows:
            cells = [_csv_cell(row[c]) for c in COLUMNS]
            (quoting_all if any("\r" in cell for cell in cells) else writer).writerow(cells)
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps({c: row[c] for c in COLUMNS}, ensure_ascii=False) + "\n")
    else:
        raise LabelFileError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
