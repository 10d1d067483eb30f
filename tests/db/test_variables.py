"""Environment variables land in NocoBase's table; secrets encrypted as NocoBase does."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.commands.variables import Variable, sync_variables
from controller.engine import nocobase_secrets
from controller.errors import InvalidInput
from tests.db.dbhelpers import rows
from tests.fixtures import nocobase_shape as shape

KEY = bytes(range(32))


def test_variables_written_and_idempotent(
    dialect: str, make_database: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_database(dialect, "env")
    shape.build(db, variables={"OLD": ("default", "x")})
    desired = [
        Variable("API_BASE", "plain", "https://api.test"),
        Variable("API_TOKEN", "secret", "tok-SECRET-1"),
        Variable("OLD", "plain", "y"),
    ]
    first = sync_variables(db, desired, KEY)
    assert first.created == ("API_BASE", "API_TOKEN") and first.updated == ("OLD",)
    stored = dict(
        (n, (t, v))
        for n, t, v in rows(db, "environmentVariables", "name", "type", "value", order="name")
    )
    assert stored["API_BASE"] == ("default", "https://api.test")
    assert stored["API_TOKEN"][0] == "secret"
    assert "tok-SECRET-1" not in stored["API_TOKEN"][1]
    assert nocobase_secrets.decrypt(KEY, stored["API_TOKEN"][1]) == "tok-SECRET-1"
    again = sync_variables(db, desired, KEY)
    assert again.unchanged == ("API_BASE", "API_TOKEN", "OLD") and not again.updated
    assert "tok-SECRET-1" not in repr(first) + repr(again) + capsys.readouterr().out


def test_secret_without_key_refused(tmp_path: object) -> None:
    with pytest.raises(InvalidInput, match="encryption key"):
        sync_variables("sqlite:///unused.db", [Variable("T", "secret", "v")], None)
