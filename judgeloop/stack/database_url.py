"""SQL database URLs as users paste them, turned into the form each consumer needs.

MLflow's backend store and Dagster's storage both go through SQLAlchemy. Since SQLAlchemy 2.1 a
bare ``postgresql://`` URL selects the psycopg 3 driver, which is not installed (MLflow then
fails to connect) and which dagster-postgres cannot use at all (its ``LISTEN/NOTIFY`` statements
fail). Hosted services also hand out ``postgres://`` URLs, which SQLAlchemy rejects. Every
PostgreSQL URL is therefore pinned to ``postgresql+psycopg2://`` (the ``postgres`` extra);
an explicit driver the user chose is left alone, and so is every other database.
"""

from urllib.parse import urlsplit

POSTGRES_DRIVER = "postgresql+psycopg2"
_BARE_POSTGRES = {"postgres", "postgresql"}


def for_sqlalchemy(url: str) -> str:
    """The URL with a driver SQLAlchemy, MLflow and dagster-postgres all accept."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _BARE_POSTGRES:
        return f"{POSTGRES_DRIVER}://{rest}"
    return url


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.partition("://")[0].lower().split("+", 1)[0] in _BARE_POSTGRES


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# MLflow and Dagster both own a table named ``runs`` (and an ``alembic_version``), so they cannot
# share one schema. Dagster's storage lives in this schema of the same database: one URL to
# configure, one database to back up.
DAGSTER_SCHEMA = "dagster"


def dagster_storage_url(url: str) -> str:
    """The database URL with Dagster's tables in their own schema (libpq ``search_path`` option)."""
    url = for_sqlalchemy(url)
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{DAGSTER_SCHEMA}"


def create_dagster_schema(url: str) -> None:
    """Create Dagster's schema if missing (dagster-postgres creates its tables, not the schema)."""
    import sqlalchemy as sa

    engine = sa.create_engine(for_sqlalchemy(url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {DAGSTER_SCHEMA}"))
    finally:
        engine.dispose()
