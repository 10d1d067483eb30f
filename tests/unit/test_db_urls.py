"""Database URLs are shown without their secrets, and refused before connecting when broken."""

from __future__ import annotations

import pytest

from controller.db.urls import parse, redact, scrub
from controller.errors import InvalidInput

SECRET = "S3cr3t-Value"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://app:{SECRET}@db:5432/x",
        f"postgresql+psycopg://app@db/x?password={SECRET}",
        f"postgresql+psycopg://app@db/x?sslmode=require&PASSWORD={SECRET}",
        f"postgresql+psycopg://app@db/x?sslpassword={SECRET}",
        f"mysql+pymysql://app@db/x?passwd={SECRET}&charset=utf8mb4",
        f"mysql+pymysql://app@db/x?pwd={SECRET}",
        f"mysql+pymysql://app@db/x?ssl_key_password={SECRET}",
        f"postgresql://app@db/x?token={SECRET}",
        f"postgresql://app@db/x?client_secret={SECRET}",
        f"postgresql://app:{SECRET}@{SECRET}@db/x",  # an unencoded @ in the password
        f"postgresql://app:{SECRET}@db:port/x",  # unparseable port
        f"app:{SECRET}@db/x",  # no scheme at all
        f"host=db user=app password={SECRET} dbname=x",  # libpq keyword/value form
    ],
)
def test_redact_hides_every_secret(url: str) -> None:
    shown = redact(url)
    assert SECRET not in shown and "***" in shown


def test_scrub_removes_secrets_of_urls_already_seen() -> None:
    redact(f"postgresql://app:{SECRET}-2@db/x")
    assert scrub(f'could not resolve "{SECRET}-2"') == 'could not resolve "***"'
    # MySQL's own wording stays readable
    said = "Access denied for user 'app'@'10.0.0.1' (using password: YES)"
    assert scrub(said) == said


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://u:p@h:abc/x", "not a number"),
        ("postgresql://u:p@h:70000/x", "out of range"),
        ("postgresql://u:p@h:0/x", "out of range"),
        ("postgresql+pg8000://u:p@h/x", "unsupported driver"),
        ("mssql://u:p@h/x", "unsupported database"),
        ("sqlite:///x.db?mode=rwc", "not supported"),
        ("sqlite://host/x.db", "SQLite URL"),
        ("no url", "not a database URL"),
    ],
)
def test_parse_refuses(url: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        parse(url)


def test_parse_picks_the_installed_driver() -> None:
    assert parse("postgresql://u@h/x").drivername == "postgresql+psycopg"
    assert parse("mariadb://u@h/x").drivername == "mariadb+pymysql"
    assert parse("mysql://u@h/x").drivername == "mysql+pymysql"
    assert parse("sqlite:///x.db").drivername == "sqlite"
