"""One style for ``ferry``'s flags, and the old spellings kept for one release.

Parsing only (no command runs, nothing is opened): the old and the new spelling of a
flag must give the same arguments, the old one must say once on stderr what to use
instead and the new one nothing, the old one must be hidden from ``--help``, and a
list flag must mean the same repeated or as a comma list. tests/db/test_cli.py runs
the same spellings against real databases.
"""

from __future__ import annotations

import argparse

import pytest

from controller.cli.main import build_parser, main

DB = "sqlite:///nowhere.db"
MIGRATE = ["migrate", "--source", DB, "--target", DB]
CREATE = ["backup", "create", "--database", DB, "--store", "store"]
RESTORE = ["restore", "--store", "store", "--backup", "b1", "--database", DB]
NO_BACKUP_WARNING = "warning: --no-backup is deprecated; use --skip-backup\n"


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ([*MIGRATE, "--no-backup"], [*MIGRATE, "--skip-backup"]),
        (
            [*MIGRATE, "--no-backup", "--format", "json"],
            [*MIGRATE, "--format", "json", "--skip-backup"],
        ),
        (["migrate", "--no-backup", "--source", DB, "--target", DB], [*MIGRATE, "--skip-backup"]),
        ([*MIGRATE, "--no-backup", "--no-backup"], [*MIGRATE, "--skip-backup"]),
        ([*MIGRATE, "--no-backup", "--skip-backup"], [*MIGRATE, "--skip-backup"]),
    ],
)
def test_no_backup_is_skip_backup_and_warns_once(
    old: list[str], new: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert vars(parse(new))["skip_backup"] is True
    assert capsys.readouterr().err == ""
    assert vars(parse(old)) == vars(parse(new))
    err = capsys.readouterr().err
    assert err == NO_BACKUP_WARNING, err


def test_without_the_flag_a_backup_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(MIGRATE)
    assert args.skip_backup is False and not hasattr(args, "no_backup")
    assert capsys.readouterr().err == ""


def test_help_shows_the_new_spelling_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["migrate", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--skip-backup" in out and "--no-backup" not in out


@pytest.mark.parametrize(
    "argv",
    [
        [*MIGRATE, "--no-backup=yes"],  # a switch takes no value, old or new
        [*MIGRATE, "--skip-backup=yes"],
        [*MIGRATE, "--no-b"],  # abbreviations stay refused for the alias too
        [*MIGRATE, "--no-backups"],
        [*MIGRATE, "--skip-b"],
        ["promote", "--from", "dev", "--to", "pre", "--no-backup"],  # promote never had it
        [*CREATE, "--skip-backup"],
    ],
)
def test_wrong_spellings_are_refused_in_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if not line.startswith("warning: ")]
    assert len(errors) == 1 and errors[0].startswith("error: "), lines


LISTS = [
    (CREATE, "--tables", "tables"),
    (CREATE, "--exclude", "exclude"),
    (RESTORE, "--tables", "tables"),
]


@pytest.mark.parametrize(("base", "flag", "dest"), LISTS)
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["roles,users"], ["roles", "users"]),
        (["roles", "users"], ["roles", "users"]),
        (["roles, users ", "ui*"], ["roles", "users", "ui*"]),
        (["roles,users", "roles"], ["roles", "users"]),  # each name once, first order kept
        (["users", "roles,users"], ["users", "roles"]),
        (["single"], ["single"]),
    ],
)
def test_a_list_flag_is_repeatable_and_takes_commas(
    base: list[str],
    flag: str,
    dest: str,
    values: list[str],
    expected: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = list(base)
    for value in values:
        argv += [flag, value]
    assert getattr(parse(argv), dest) == expected
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("base", "dest"), [(CREATE, "tables"), (RESTORE, "tables")])
def test_an_absent_list_means_no_restriction(base: list[str], dest: str) -> None:
    assert getattr(parse(base), dest) is None


def test_an_absent_exclude_is_none() -> None:
    assert parse(CREATE).exclude is None


@pytest.mark.parametrize(("base", "flag", "_dest"), LISTS)
@pytest.mark.parametrize(
    ("value", "says"),
    [
        (",", "empty name"),  # must not mean "every table"
        (" , ", "empty name"),
        ("roles,,users", "empty name"),
        ("roles,", "empty name"),
        (",roles", "empty name"),
        ("   ", "empty name"),
        ("", "empty value"),
        ("roles,\x00users", "control character"),
        ("roles,\nusers", "control character"),
        ("a," * 2100, "at most"),
    ],
)
def test_a_list_with_an_empty_or_hostile_name_is_refused(
    base: list[str],
    flag: str,
    _dest: str,
    value: str,
    says: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*base, flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert says in err and flag in err, err
