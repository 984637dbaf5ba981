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
