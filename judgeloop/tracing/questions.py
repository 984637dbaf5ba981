"""Questions the agent answers: loaded from a file and validated before anything runs."""

import json
from pathlib import Path


class BadInputError(ValueError):
    """Input that cannot be used; the message names the record and the field."""


def validate_inputs(records: list[dict], source: str) -> list[dict]:
    """Each record is ``{"question": str, ...}``; raise naming every bad record at once."""
    problems = []
    for index, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            problems.append(f"{source} record {index}: expected an object with a 'question' field, got {type(record).__name__}")
            continue
        question = record.get("question")
        if not isinstance(question, str) or not question.strip():
            problems.append(f"{source} record {index}: field 'question' is empty or missing")
    if problems:
        raise BadInputError("Bad questions, nothing was run:\n" + "\n".join(problems))
    return records


def load_questions(path: Path) -> list[dict]:
    """JSONL (one object per line), a JSON list, or plain text (one question per line)."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"Questions file {path} does not exist (JUDGELOOP_QUESTIONS_PATH)")
    text = path.read_text()
    if path.suffix == ".jsonl":
        records = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BadInputError(f"{path.name} line {line_no}: not valid JSON ({exc.msg})") from exc
    elif path.suffix == ".json":
        records = json.loads(text)
    else:
        records = [{"question": line} for line in text.splitlines() if line.strip()]
    return validate_inputs(records, path.name)
