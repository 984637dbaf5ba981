"""Database URLs as users paste them: PostgreSQL pinned to the installed psycopg2 driver."""

import pytest

from judgeloop.stack import database_url
from judgeloop.settings import Settings


@pytest.mark.parametrize(
    "pasted, expected",
    [
        ("postgresql://u:p@db:5432/j", "postgresql+psycopg2://u:p@db:5432/j"),
        ("postgres://u:p@db/j", "postgresql+psycopg2://u:p@db/j"),
        ("POSTGRESQL://db/j", "postgresql+psycopg2://db/j"),
        ("postgresql+psycopg2://db/j", "postgresql+psycopg2://db/j"),
        ("postgresql+pg8000://db/j", "postgresql+pg8000://db/j"),  # a driver the user chose stays
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("mysql+pymysql://db/j", "mysql+pymysql://db/j"),
    ],
)
def test_for_sqlalchemy(pasted, expected):
    assert database_url.for_sqlalchemy(pasted) == expected


def test_settings_pin_the_driver_everywhere_a_database_url_goes():
    settings = Settings(database_url="postgresql://u@db/j", backend_store_uri="postgres://u@db/j")
    assert settings.database_url == "postgresql+psycopg2://u@db/j"
    assert settings.resolved_backend_store_uri == "postgresql+psycopg2://u@db/j"
    assert Settings(database_url="postgresql://u@db/j").resolved_tracking_uri == "postgresql+psycopg2://u@db/j"
    assert Settings(tracking_uri="postgresql://u@db/j").tracking_uri == "postgresql+psycopg2://u@db/j"


def test_dagster_gets_its_own_schema_and_passwords_stay_out_of_messages():
    assert database_url.dagster_storage_url("postgresql://u@db/j") == "postgresql+psycopg2://u@db/j?options=-csearch_path%3Ddagster"
    assert database_url.dagster_storage_url("postgresql://u@db/j?sslmode=require").endswith("?sslmode=require&options=-csearch_path%3Ddagster")
    assert database_url.redacted("postgresql+psycopg2://u:secret@db/j") == "postgresql+psycopg2://u:***@db/j"


@pytest.mark.parametrize(
    "url, says",
    [
        ("mysql+pymysql://u@db/j", "must be a PostgreSQL URL"),
        # Nothing listens on port 1: the error names the database without its password.
        ("postgresql://u:hunter2@127.0.0.1:1/j", "cannot reach postgresql+psycopg2://u:***@127.0.0.1:1/j"),
    ],
)
def test_up_refuses_an_unusable_database_before_starting_anything(home, monkeypatch, capsys, url, says):
    from judgeloop.cli import main
    from judgeloop.stack.servers import free_port

    monkeypatch.setenv("JUDGELOOP_DATABASE_URL", url)
    code = main(["up", "--mlflow-port", str(free_port()), "--dagster-port", str(free_port()), "--no-launch"])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "hunter2" not in err
    assert not (home / "logs").exists() and not (home / "running.json").exists()
