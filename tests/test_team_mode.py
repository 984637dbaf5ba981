"""`judgeloop up --team`: MLflow's basic-auth app, one account per reviewer, labels carry the reviewer."""

import json
import stat

import pytest
import requests

from tests.e2e_support import run_judgeloop, start_up


@pytest.mark.slow
def test_team_mode_accounts_permissions_and_attributed_labels(tmp_path, monkeypatch):
    home = tmp_path / "state"
    up = start_up(home, tmp_path / "work", "--team", "--demo", "--no-launch", env_extra={"JUDGELOOP_REVIEWERS": "alice,bob"})
    try:
        up.wait_ready()
        experiment_id = up.experiment_id()
        creds_path = home / "team-credentials.json"
        assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(home.stat().st_mode) == 0o700  # it holds mlflow.db and the auth database too
        creds = json.loads(creds_path.read_text())
        assert set(creds["reviewers"]) == {"alice", "bob"}
        assert "alice" in up.stdout and "review-queue" in up.stdout
        assert creds["admin"]["password"] not in up.stdout  # secrets are not printed

        api = f"{up.mlflow_url}/api/2.0/mlflow"
        # No credentials: refused. Reviewer credentials: admitted, with edit rights on the experiment.
        assert requests.get(f"{api}/experiments/get", params={"experiment_id": experiment_id}, timeout=10).status_code == 401
        alice = ("alice", creds["reviewers"]["alice"])
        assert requests.get(f"{api}/experiments/get", params={"experiment_id": experiment_id}, auth=alice, timeout=10).ok
        from mlflow.server.auth.client import AuthServiceClient

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", creds["admin"]["username"])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", creds["admin"]["password"])
        granted = AuthServiceClient(up.mlflow_url).get_user_permission("alice", "experiment", experiment_id)
        assert granted.permission == "EDIT" and granted.allowed

        # Alice labels a demo trace as herself, with her own credentials.
        import mlflow
        from mlflow.entities import AssessmentSource

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", creds["reviewers"]["alice"])
        mlflow.set_tracking_uri(up.mlflow_url)
        client = mlflow.MlflowClient(up.mlflow_url)
        trace_id = client.search_traces(locations=[experiment_id], max_results=1)[0].info.trace_id
        mlflow.log_feedback(
            trace_id=trace_id, name="answer_quality", value=3, rationale="clear and on topic",
            source=AssessmentSource(source_type="HUMAN", source_id="alice"),
        )
        stored = [a for a in client.get_trace(trace_id).info.assessments if a.source.source_type == "HUMAN"]
        assert [(a.name, a.value, a.source.source_id) for a in stored] == [("answer_quality", 3, "alice")]
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        with pytest.raises(Exception):
            client.search_traces(locations=[experiment_id], max_results=1)

        # Another shell on the same state folder, without credentials or with a wrong password:
        # one paragraph saying how to authenticate, no traceback.
        for command, extra in [
            (("status",), {}), (("labels", "export"), {}),
            (("labels", "export"), {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "wrong"}),
        ]:
            shell = run_judgeloop(home, tmp_path / "shell", *command, env_extra={"JUDGELOOP_REVIEWERS": "alice,bob", **extra})
            assert shell.returncode == 2, (command, shell.stdout, shell.stderr)
            assert "Traceback" not in shell.stderr and "401" not in shell.stderr, shell.stderr
            assert "MLFLOW_TRACKING_USERNAME" in shell.stderr and "MLFLOW_TRACKING_PASSWORD" in shell.stderr
            assert up.mlflow_url in shell.stderr and str(creds_path) in shell.stderr
            assert len(shell.stderr.strip().splitlines()) == 1
        admin = {"MLFLOW_TRACKING_USERNAME": creds["admin"]["username"], "MLFLOW_TRACKING_PASSWORD": creds["admin"]["password"]}
        shell = run_judgeloop(home, tmp_path / "shell", "status", env_extra={"JUDGELOOP_REVIEWERS": "alice,bob", **admin})
        assert shell.returncode == 0, shell.stderr

        # A fresh start on the same state re-uses the accounts (no new passwords).
        assert up.interrupt() == 130
        assert json.loads(creds_path.read_text())["reviewers"] == creds["reviewers"]
        assert not up.leftovers()
    finally:
        up.shutdown()
