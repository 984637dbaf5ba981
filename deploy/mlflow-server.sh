#!/usr/bin/env bash
# One MLflow tracking server for the whole team: several workers on PostgreSQL, artifacts on
# S3-compatible object storage, proxied (clients and Dagster runs never hold storage credentials).
#
#   MLFLOW_DATABASE_URL     postgresql+psycopg2://mlflow:***@db:5432/judgeloop  (schema public)
#   MLFLOW_ARTIFACTS        s3://judgeloop-artifacts/mlflow
#   MLFLOW_S3_ENDPOINT_URL  only for S3-compatible stores (MinIO, Ceph...); unset for AWS S3
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY   object-store credentials, this process only
#
# Several servers behind a load balancer work too: workers and servers share nothing but the
# database. Background job execution stays off so stopping the server stops all its processes.
set -euo pipefail
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec mlflow server \
    --host 0.0.0.0 --port 5000 \
    --workers "${MLFLOW_WORKERS:-4}" \
    --backend-store-uri "${MLFLOW_DATABASE_URL:?set MLFLOW_DATABASE_URL}" \
    --artifacts-destination "${MLFLOW_ARTIFACTS:?set MLFLOW_ARTIFACTS}" \
    --serve-artifacts
