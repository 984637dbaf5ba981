"""`judgeloop up --host` other than loopback: a warning before anything listens."""

import pytest

from judgeloop.stack import exposure
from tests.e2e_support import run_judgeloop


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_warning(host):
    assert exposure.warnings(host, team=True) == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "judgeloop.example.com"])
def test_team_mode_on_a_network_address_warns_of_clear_text_passwords(host):
    text = " ".join(exposure.warnings(host, team=True))
    assert "clear text" in text and "TLS" in text and host in text
    assert "no login" in text  # Dagster's UI, with or without --team
    assert "clear text" not in " ".join(exposure.warnings(host, team=False))


def test_up_warns_before_it_starts_anything(tmp_path):
    # A state folder that cannot be created stops `up` before any port is probed or server started.
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run_judgeloop(
        blocker / "state", tmp_path / "work", "up", "--team", "--host", "0.0.0.0", env_extra={"JUDGELOOP_REVIEWERS": "alice"},
    )
    assert done.returncode == 2, done.stderr
    assert "passwords travel in clear text" in done.stderr and "--host 0.0.0.0" in done.stderr
    assert "is not usable" in done.stderr  # the early exit: nothing was started
    loopback = run_judgeloop(blocker / "state", tmp_path / "work", "up", "--team", env_extra={"JUDGELOOP_REVIEWERS": "alice"})
    assert loopback.returncode == 2 and "WARNING" not in loopback.stderr
