"""Team mode's secrets: team-credentials.json is 0600 from its first byte, the state folder 0700."""

import json
import os
import stat
from pathlib import Path

import pytest

from judgeloop.commands.up import _team_credentials
from judgeloop.stack.private_files import make_private_folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def no_chmod(monkeypatch):
    """Fail on any chmod: a file written first and restricted afterwards was readable in between."""

    def refuse(*args, **kwargs):
        raise AssertionError("chmod called: the file existed with a wider mode before it")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)


def test_credentials_are_created_owner_only(tmp_path, no_chmod):
    old = os.umask(0)  # the widest umask: the mode must come from the create call itself
    try:
        creds = _team_credentials(tmp_path, ["alice", "bob"])
    finally:
        os.umask(old)
    path = tmp_path / "team-credentials.json"
    assert mode(path) == 0o600
    assert json.loads(path.read_text()) == creds
    assert [p.name for p in tmp_path.iterdir()] == ["team-credentials.json"]  # no temporary file left


def test_a_world_readable_credentials_file_is_replaced_not_reused(tmp_path, no_chmod):
    path = tmp_path / "team-credentials.json"
    old = os.umask(0)
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644), "w") as out:
            out.write(json.dumps({"reviewers": {"alice": "kept-password"}}))
    finally:
        os.umask(old)
    assert mode(path) == 0o644
    creds = _team_credentials(tmp_path, ["alice", "bob"])
    assert mode(path) == 0o600
    assert creds["reviewers"]["alice"] == "kept-password"  # accounts survive a restart
    assert set(json.loads(path.read_text())["reviewers"]) == {"alice", "bob"}


def test_state_folder_is_owner_only(tmp_path):
    fresh = tmp_path / "fresh" / "state"
    make_private_folder(fresh)
    assert mode(fresh) == 0o700
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    (existing / "mlflow.db").write_text("")
    make_private_folder(existing)
    assert mode(existing) == 0o700
