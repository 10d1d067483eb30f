# ruff: noqa: E501 - the tables read best one case a line
"""Literal credentials in configuration rows are found; references and look-alikes are not.

Two tables of (column, value, is_json): every positive must be reported at the given
path, every negative not at all. Values are made up; the shapes are the real ones.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.engine.secret_scan import has_secret_shape, is_secret_name, secret_paths

P = pytest.param
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz"


def _j(value: Any) -> str:
    return json.dumps(value)


POSITIVES = [
    # --- names ---------------------------------------------------------------------------
    P("options", _j({"password": "hunter2"}), True, ["options.password"], id="password"),
    P("options", _j({"secret_key": "abc123"}), True, ["options.secret_key"], id="secret_key"),
    P("options", _j({"secretKey": "abc123"}), True, ["options.secretKey"], id="secretKey"),
    P("options", _j({"secretAccessKey": "abc"}), True, ["options.secretAccessKey"], id="secretAccessKey"),
    P("options", _j({"accessKeyId": "abc"}), True, ["options.accessKeyId"], id="accessKeyId"),
    P("options", _j({"encryptionKey": "k"}), True, ["options.encryptionKey"], id="encryptionKey"),
    P("options", _j({"signingKey": "k"}), True, ["options.signingKey"], id="signingKey"),
    P("options", _j({"pwd": "k"}), True, ["options.pwd"], id="pwd"),
    P("options", _j({"passwd": "k"}), True, ["options.passwd"], id="passwd"),
    P("options", _j({"PASSWORD": "k"}), True, ["options.PASSWORD"], id="PASSWORD"),
    P("options", _j({"dbPassword": "k"}), True, ["options.dbPassword"], id="dbPassword"),
    P("options", _j({"passphrase": "k"}), True, ["options.passphrase"], id="passphrase"),
    P("options", _j({"credentials": "k"}), True, ["options.credentials"], id="credentials-string"),
    P("options", _j({"credentials": {"user": "a", "pin": "1"}}), True, ["options.credentials.user", "options.credentials.pin"], id="credentials-container"),
    P("options", _j({"apiKey": "k"}), True, ["options.apiKey"], id="apiKey"),
    P("options", _j({"api_key": "k"}), True, ["options.api_key"], id="api_key"),
    P("options", _j({"X-Api-Key": "k"}), True, ["options.X-Api-Key"], id="X-Api-Key"),
    P("options", _j({"privateKey": "k"}), True, ["options.privateKey"], id="privateKey"),
    P("options", _j({"accessToken": "k"}), True, ["options.accessToken"], id="accessToken"),
    P("options", _j({"refresh_token": "k"}), True, ["options.refresh_token"], id="refresh_token"),
    P("options", _j({"clientSecret": "k"}), True, ["options.clientSecret"], id="clientSecret"),
    P("options", _j({"appSecret": "k"}), True, ["options.appSecret"], id="appSecret"),
    P("options", _j({"masterKey": "k"}), True, ["options.masterKey"], id="masterKey"),
    P("options", _j({"headers": {"Authorization": "Basic dXNlcjpwYXNz"}}), True, ["options.headers.Authorization"], id="authorization-header-name"),
    P("options", _j({"nested": [{"token": "abc"}]}), True, ["options.nested[0].token"], id="nested-list"),
    P("encryptionPassword", "s3cr3t", False, ["encryptionPassword"], id="plain-column"),
    # --- shapes, under any name ------------------------------------------------------------
    P("options", _j({"url": "postgres://app:hunter2@db:5432/x"}), True, ["options.url"], id="url-with-userinfo"),
    P("endpoint", "https://bot:t0ken@git.example.com/x.git", False, ["endpoint"], id="url-userinfo-text-column"),
    P("options", _j({"headers": "Authorization: Bearer abcdef123456"}), True, ["options.headers"], id="authorization-line"),
    P("options", _j({"header": f"Bearer {JWT}"}), True, ["options.header"], id="bearer-jwt"),
    P("options", _j({"cert": PEM}), True, ["options.cert"], id="pem-private-key"),
    P("options", _j({"cert": PEM.replace("RSA ", "ENCRYPTED ")}), True, ["options.cert"], id="pem-encrypted-key"),
    P("options", _j({"cert": PEM.replace("RSA ", "OPENSSH ")}), True, ["options.cert"], id="pem-openssh-key"),
    P("options", _j({"id": "AKIAIOSFODNN7EXAMPLE"}), True, ["options.id"], id="aws-access-key"),
    P("options", _j({"gh": "ghp_" + "a1" * 18}), True, ["options.gh"], id="github-token"),
    P("options", _j({"hook": "xoxb-123456789012-abcdef"}), True, ["options.hook"], id="slack-token"),
    P("options", _j({"k": "sk_live_" + "a1b2" * 6}), True, ["options.k"], id="stripe-key"),
    P("options", _j({"k": "AIza" + "B" * 35}), True, ["options.k"], id="google-api-key"),
    P("options", "not json but postgres://u:pw123@h/db", True, ["options"], id="invalid-json-with-url"),
]  # fmt: skip

NEGATIVES = [
    P("options", _j({"passwordPolicy": {"minLength": 8, "requireDigits": True}}), True, id="passwordPolicy"),
    P("options", _j({"passwordLength": "12"}), True, id="passwordLength"),
    P("options", _j({"minPasswordLength": "12"}), True, id="minPasswordLength"),
    P("options", _j({"enableChangePassword": "true"}), True, id="enableChangePassword"),
    P("options", _j({"tokenExpiry": "7d"}), True, id="tokenExpiry"),
    P("options", _j({"tokenExpiresIn": "7d"}), True, id="tokenExpiresIn"),
    P("options", _j({"tokenType": "Bearer"}), True, id="tokenType"),
    P("options", _j({"totalTokens": "100"}), True, id="totalTokens"),
    P("options", _j({"secretName": "db-credentials"}), True, id="secretName-reference"),
    P("options", _j({"password": "{{$env.DB_PASSWORD}}"}), True, id="env-reference"),
    P("options", _j({"password": "{{ $env.DB_PASSWORD }}"}), True, id="env-reference-spaced"),
    P("options", _j({"url": "postgres://app:{{$env.PW}}@db/x"}), True, id="url-env-password"),
    P("options", _j({"header": "Bearer {{$env.TOKEN}}"}), True, id="bearer-env"),
    P("options", _j({"password": ""}), True, id="empty-password"),
    P("options", _j({"password": "******"}), True, id="masked-password"),
    P("options", _j({"password": None}), True, id="null-password"),
    P("options", _j({"password": True}), True, id="boolean-password"),
    P("options", _j({"publicKey": "ssh-ed25519 AAAA"}), True, id="publicKey"),
    P("options", _j({"primaryKey": "id", "templateKey": "x", "keyField": "k", "key": "v"}), True, id="key-look-alikes"),
    P("options", _j({"url": "https://git@example.com/x.git"}), True, id="url-user-no-password"),
    P("options", _j({"cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}), True, id="pem-certificate"),
    P("options", _j({"help": "Use a Bearer token from your identity provider"}), True, id="bearer-prose"),
    P("options", _j({"repo": "git@github.com:team/config.git"}), True, id="scp-like-git"),
    P("title", "password", False, id="word-password-as-value"),
    P("options", _j({"x-uid": "abc", "name": "Secrets", "tokens": "5"}), True, id="plain-keys"),
    P("description", "Change your password every 90 days", False, id="prose"),
]  # fmt: skip


@pytest.mark.parametrize(("column", "value", "is_json", "paths"), POSITIVES)
def test_credentials_are_found(column: str, value: str, is_json: bool, paths: list[str]) -> None:
    assert secret_paths(column, value, is_json) == paths


@pytest.mark.parametrize(("column", "value", "is_json"), NEGATIVES)
def test_look_alikes_are_not_reported(column: str, value: str, is_json: bool) -> None:
    assert secret_paths(column, value, is_json) == []


def test_the_tables_are_large_enough() -> None:
    assert len(POSITIVES) >= 25 and len(NEGATIVES) >= 15


def test_names_and_shapes_alone() -> None:
    assert all(map(is_secret_name, ["secret", "token", "idToken", "hmacKey", "APIKEY"]))
    assert not any(map(is_secret_name, ["", "key", "id", "passwordHint", "tokenUrl"]))
    assert has_secret_shape("Authorization: Bearer abcdef123456")
    assert not has_secret_shape("https://example.com/path@v1")


def test_only_paths_are_reported_never_values() -> None:
    value = _j({"password": "hunter2", "ref": {"password": "{{$env.DB_PASSWORD}}"}})
    found = secret_paths("options", value, is_json=True)
    assert found == ["options.password"] and not any("hunter2" in p for p in found)
