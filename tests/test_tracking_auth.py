"""A tracking server refusing the command (team mode's basic auth): recognised through wrapping, explained."""

from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, UNAUTHENTICATED

from judgeloop.stack import tracking_auth


def test_refusals_are_recognised_also_when_wrapped():
    unauthenticated = MlflowException("failed with error code 401 != 200", error_code=UNAUTHENTICATED)
    try:
        try:
            raise unauthenticated
        except MlflowException as exc:
            raise RuntimeError("reading labels failed") from exc
    except RuntimeError as wrapped:
        assert tracking_auth.refusal_status(wrapped) == 401
    assert tracking_auth.refusal_status(MlflowException("no", error_code=PERMISSION_DENIED)) == 403
    assert tracking_auth.refusal_status(MlflowException("gone", error_code=RESOURCE_DOES_NOT_EXIST)) is None
    assert tracking_auth.refusal_status(ValueError("x")) is None


def test_the_explanation_names_the_variables_and_the_credentials_file():
    for status in (401, 403):
        text = tracking_auth.explain(status, "http://127.0.0.1:5000", Path("/state"))
        assert "MLFLOW_TRACKING_USERNAME" in text and "MLFLOW_TRACKING_PASSWORD" in text
        assert "/state/team-credentials.json" in text and "http://127.0.0.1:5000" in text
        assert "\n" not in text
