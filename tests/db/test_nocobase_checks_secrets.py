"""``ferry secrets check`` on SQLite, PostgreSQL and MariaDB: which secret variables a
key decrypts, by name, never by value, changing nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.engine import nocobase_secrets as ns
from tests.db.dbhelpers import execute, q
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused, fingerprint, run_cli

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
IV = bytes(range(16))
PLAINTEXTS = {"ERP_TOKEN": "erp-SECRET-1", "MAIL_PASSWORD": "mail-SECRET-2"}


@pytest.fixture
def restored(dialect: str, make_database: Callable[..., str]) -> str:
    """A database as restored from a backup: ERP_TOKEN encrypted with KEY, and
    MAIL_PASSWORD with another installation's key (it was set there)."""
    url = make_database(dialect, "restored")
    shape.build(
        url,
        variables={
            "ERP_TOKEN": ("secret", ns.encrypt(KEY, PLAINTEXTS["ERP_TOKEN"], IV)),
            "MAIL_PASSWORD": ("secret", ns.encrypt(OTHER, PLAINTEXTS["MAIL_PASSWORD"], IV)),
            "ERP_BASE": ("default", "https://erp.test"),
            "UNSET": ("secret", ""),
        },
    )
    return url


def _key_file(tmp_path: Path, raw: bytes, name: str = "aes_key.dat") -> str:
    path = tmp_path / name
    path.write_bytes(raw)
    return str(path)


def test_names_the_variables_the_key_cannot_decrypt(restored: str, tmp_path: Path) -> None:
    key = _key_file(tmp_path, KEY)
    out = assert_refused(
        ["secrets", "check", "--database", restored, "--key-file", key],
        2,
        watched=[restored, key],
        says="secret variables this key cannot decrypt (1 of 3): MAIL_PASSWORD",
    )
    assert not any(p in out.stderr + out.stdout for p in PLAINTEXTS.values())


def test_the_other_key_names_the_others(restored: str, tmp_path: Path) -> None:
    key = _key_file(tmp_path, OTHER.hex().encode() + b"\n", "app_aes_secret_key")
    assert_refused(
        ["secrets", "check", "--database", restored, "--key-file", key],
        2,
        watched=[restored],
        says="(1 of 3): ERP_TOKEN",
    )


def test_every_secret_decrypts_exit_0(dialect: str, restored: str, tmp_path: Path) -> None:
    table, name = q(dialect, "environmentVariables"), q(dialect, "name")
    execute(restored, f"DELETE FROM {table} WHERE {name} = 'MAIL_PASSWORD'")
    before = fingerprint([restored])
    out = run_cli(
        ["secrets", "check", "--database", restored, "--key-file", _key_file(tmp_path, KEY)]
    )
    assert out.code == 0, out.stderr
    assert out.stdout == "1 secret variable(s) decrypt with this key: ERP_TOKEN\n"
    assert fingerprint([restored]) == before


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (None, "cannot read key file"),
        (b"", "holds 0 bytes"),
        (b"k" * 2000, "larger than 1024 bytes"),
        (b"not a key\n", "holds 10 bytes"),
    ],
)
def test_a_key_file_that_is_no_key_is_refused(
    restored: str, tmp_path: Path, key: bytes | None, says: str
) -> None:
    path = str(tmp_path / "missing") if key is None else _key_file(tmp_path, key)
    assert_refused(
        ["secrets", "check", "--database", restored, "--key-file", path], 2, [restored], says
    )


def test_a_directory_is_no_key_file(restored: str, tmp_path: Path) -> None:
    assert_refused(
        ["secrets", "check", "--database", restored, "--key-file", str(tmp_path)],
        2,
        [restored],
        "is not a regular file",
    )


def test_a_database_without_variables_is_refused(db_url: str, tmp_path: Path) -> None:
    execute(db_url, "CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    assert_refused(
        ["secrets", "check", "--database", db_url, "--key-file", _key_file(tmp_path, KEY)],
        2,
        [db_url],
        "has no environmentVariables table",
    )
