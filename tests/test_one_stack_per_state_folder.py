"""One ``judgeloop up`` per state folder, and other shells refuse a state file they cannot read.

A second ``up`` on a folder in use must refuse before touching anything: it used to mark the
first stack's live runs "interrupted" (two re-alignment workers then ran at once) and its Ctrl-C
deleted the first stack's ``running.json``. A malformed ``running.json`` used to be skipped, so
``status`` and ``labels import`` wrote straight into the sqlite file behind the running server.
"""

import json
import os
import stat

import dagster as dg
import pytest

from judgeloop.cli import main
from judgeloop.stack.running_stack import StackLock
from tests.e2e_support import HOST, free_port, ports_free, run_judgeloop, start_up, wait_until


def _started_run(dagster_home) -> str:
    """A run in progress in the folder's Dagster instance, as the first stack's worker has it."""
    from judgeloop.stack.servers import write_dagster_yaml

    dagster_home.mkdir(parents=True, exist_ok=True)
    write_dagster_yaml(dagster_home)
    @dg.op
    def realign_step():
        pass

    @dg.job
    def realign():
        realign_step()

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return instance.create_run_for_job(realign, status=dg.DagsterRunStatus.STARTED).run_id


def _status_of(dagster_home, run_id: str) -> str:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return instance.get_run_by_id(run_id).status.value


def test_a_second_up_on_a_folder_in_use_refuses_and_touches_nothing(tmp_path):
    home = tmp_path / "state"
    home.mkdir()
    first = StackLock(home)  # what the running stack holds from before it touches anything
    first.acquire()
    try:
        announced = {"pid": os.getpid(), "tracking_uri": "http://127.0.0.1:5999", "dagster_url": "http://127.0.0.1:3999",
                     "backend_store_uri": f"sqlite:///{home / 'mlflow.db'}"}
        (home / "running.json").write_text(json.dumps(announced))
        run_id = _started_run(home / "dagster")
        mlflow_port, dagster_port = free_port(HOST), free_port(HOST)
        second = run_judgeloop(home, tmp_path / "cwd", "up", "--mlflow-port", str(mlflow_port),
                               "--dagster-port", str(dagster_port), timeout=120)
        assert second.returncode == 2, (second.stdout, second.stderr)
        assert f"another judgeloop up (pid {os.getpid()}, MLflow http://127.0.0.1:5999, Dagster http://127.0.0.1:3999)" in second.stderr
        assert "JUDGELOOP_HOME" in second.stderr
        assert json.loads((home / "running.json").read_text()) == announced  # not deleted on its way out
        assert _status_of(home / "dagster", run_id) == "STARTED"  # the first stack's run is left alone
        assert ports_free(mlflow_port, dagster_port)
    finally:
        first.release()


@pytest.mark.parametrize("content", ["{not json", "[]", '{"pid": "abc", "tracking_uri": "http://127.0.0.1:5000"}', '{"tracking_uri": 5}'])
def test_a_malformed_state_file_is_refused_not_skipped(content, home, tmp_path, capsys):
    home.mkdir(parents=True)
    (home / "running.json").write_text(content)
    labels_file = tmp_path / "labels.csv"
    labels_file.write_text("trace_id,value,comment,reviewer\ntr-1,3,fine,ana\n")
    for command in (["status"], ["labels", "import", str(labels_file)], ["labels", "export"]):
        code = main(command)
        err = capsys.readouterr().err
        assert code == 2, (command, err)
        assert f"{home / 'running.json'} is not a state file judgeloop up wrote" in err
        assert "delete the file" in err
    assert not (home / "mlflow.db").exists()  # nothing went around the (possibly) running server


def test_a_state_file_left_by_a_stack_that_ended_is_ignored(home, capsys):
    home.mkdir(parents=True)
    ended = os.fork()
    if ended == 0:
        os._exit(0)
    os.waitpid(ended, 0)
    (home / "running.json").write_text(json.dumps({"pid": ended, "tracking_uri": "http://127.0.0.1:9"}))
    assert main(["status"]) == 0


@pytest.mark.slow
def test_two_stacks_on_one_folder(tmp_path):
    """The real thing: a second ``up`` while the first serves; the first's Ctrl-C exits 130."""
    home = tmp_path / "state"
    first = start_up(home, tmp_path / "first")
    try:
        first.wait_ready()
        assert stat.S_IMODE(home.stat().st_mode) == 0o700  # created owner-only, never 0755 first
        announced = (home / "running.json").read_text()
        second = start_up(home, tmp_path / "second", name="second")
        try:
            code = second.popen.wait(timeout=120)
        except BaseException:
            second.shutdown()  # its clean-up kills whatever mentions the folder: only when it did not stop
            raise
        assert code == 2, second.logs()
        assert f"another judgeloop up (pid {first.popen.pid}, MLflow {first.mlflow_url}" in second.stderr
        assert (home / "running.json").read_text() == announced
        assert first.popen.poll() is None
        assert "interrupted" not in first.logs()
        code = first.interrupt(120)
        assert code == 130, (code, first.logs())
        wait_until(lambda: not (home / "running.json").exists() or None, 10, message="running.json removed by its own stack")
    finally:
        first.shutdown()
