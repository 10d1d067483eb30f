"""Literal credentials in configuration rows are found; references and look-alikes are not."""

from __future__ import annotations

import json

import pytest

from controller.engine.secret_scan import is_secret_name, secret_paths


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "encryptionPassword",
        "secretAccessKey",
        "clientSecret",
        "apiKey",
        "api_key",
        "privateKey",
        "token",
        "accessToken",
        "accessKeyId",
        "secret",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "key",
        "x-uid",
        "totalTokens",
        "enableChangePassword",
        "passwordPolicy",
        "tokenExpiresIn",
        "templateKey",
        "passwordLength",
        "keyField",
    ],
)
def test_look_alikes(name: str) -> None:
    assert not is_secret_name(name)


def test_json_paths_and_references() -> None:
    options = {
        "host": "db",
        "password": "hunter2",
        "nested": [{"clientSecret": "abc"}],
        "ref": {"password": "{{$env.DB_PASSWORD}}"},
        "empty": {"password": ""},
    }
    assert secret_paths("options", json.dumps(options), is_json=True) == [
        "options.password",
        "options.nested[0].clientSecret",
    ]
    assert secret_paths("encryptionPassword", "s3cr3t", is_json=False) == ["encryptionPassword"]
    assert secret_paths("encryptionPassword", "{{ $env.BACKUP_PW }}", is_json=False) == []
    assert secret_paths("title", "password", is_json=False) == []
