"""Artifacts on S3-compatible storage: `judgeloop up`'s MLflow server command with an s3://
destination and MLFLOW_S3_ENDPOINT_URL stores what clients log in the bucket, proxied (the
client holds no storage credentials). moto's server stands in for S3."""

import os
import subprocess
import sys

import boto3
import pytest

from judgeloop.stack import servers
from judgeloop.settings import load_settings
from tests.e2e_support import wait_until

pytestmark = pytest.mark.slow

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_endpoint(tmp_path):
    port = servers.free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(tmp_path / "moto.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: servers.port_is_free("127.0.0.1", port) is False, 60, interval=0.5, message="moto server up")
        yield endpoint
    finally:
        servers.Process("moto", moto, tmp_path / "moto.log").stop(grace=10)


def test_mlflow_server_stores_artifacts_in_s3(home, s3_endpoint, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("JUDGELOOP_ARTIFACTS_DESTINATION", "s3://judgeloop-artifacts/mlflow")
    settings = load_settings()
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **{k.lower(): v for k, v in S3_ENV.items() if k != "AWS_DEFAULT_REGION"},
                      region_name="us-east-1")
    s3.create_bucket(Bucket="judgeloop-artifacts")

    port = servers.free_port()
    env = {**os.environ, **S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    stack = servers.Stack()
    try:
        process = stack.start("mlflow", servers.mlflow_command(
            "127.0.0.1", port, f"sqlite:///{tmp_path / 'mlflow.db'}", settings.artifacts_destination, False, workers=1,
        ), env, tmp_path / "logs")
        servers.wait_for_http(f"http://127.0.0.1:{port}/health", process, timeout=180)
        for key in S3_ENV:  # the client uploads through the server, never to S3 itself
            monkeypatch.delenv(key, raising=False)
        mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
        mlflow.set_experiment("s3")
        with mlflow.start_run() as run:
            mlflow.log_text("kept in the bucket", "notes/hello.txt")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="judgeloop-artifacts").get("Contents", [])]
        assert any(key.startswith("mlflow/") and key.endswith(f"{run.info.run_id}/artifacts/notes/hello.txt") for key in keys), keys
        assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/hello.txt") == "kept in the bucket"
    finally:
        stack.stop()
