"""Hostile and broken inputs to every ``ferry`` command: refused, in one line, nothing changed.

One table, one row per input. Each row runs the real command line in-process against
real databases and a real backup store, and :func:`tests.hostile.assert_refused`
proves the exit code (2 invalid input or refused check, 75 temporary, 1 failure while
applying), a single ``error:`` line without a traceback, and that the target, the
source, the store, the snapshot directory and the case's own files are byte for byte
as they were.

The world every row runs in (built once): ``dev`` (a NocoBase-shaped source with
builder changes not yet promoted, so any migration that slipped through would change
the target), ``pre`` (the target, with migration ``r0`` applied and recorded),
a store holding r0's pre-migration backup and post-state, and a snapshot of ``dev``
written by ``ferry export``. Placeholders in a row's arguments: ``{dev}``, ``{pre}``
(URLs), ``{store}``, ``{snap}``, ``{backup}`` and ``{tmp}`` (the row's own directory,
holding the files the row writes first).
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controller.cli.main import main
from tests.db.dbhelpers import execute
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused

VARS = {"HOOK_TOKEN": ("secret", "x"), "TICKET_WEBHOOK": ("plain", "y")}


@dataclass(frozen=True)
class World:
    dev: str
    pre: str
    dev_file: Path
    pre_file: Path
    store: Path
    snap: Path
    backup: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    dev_file, pre_file = root / "dev.db", root / "pre.db"
    dev, pre = f"sqlite:///{dev_file}", f"sqlite:///{pre_file}"
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    store = root / "store"
    args = ["migrate", "--source", dev, "--target", pre, "--id", "r0"]
    assert main([*args, "--backup-store", str(store)]) == 0
    # Pending changes: any migration that slipped through would change pre.
    execute(dev, "UPDATE roles SET title = title || ' (next release)'")
    snap = root / "snap"
    assert main(["export", "--source", dev, "--dir", str(snap)]) == 0
    (backup,) = (p.name for p in (store / "pre").iterdir())
    return World(dev, pre, dev_file, pre_file, store, snap, backup)


Setup = Callable[[World, Path], None]


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    code: int
    says: str
    files: dict[str, bytes] = field(default_factory=dict)
    setup: Setup | None = None
    env: dict[str, str] = field(default_factory=dict)


def case(
    command: str,
    says: str,
    *,
    id: str,
    code: int = 2,
    files: dict[str, bytes | str] | None = None,
    setup: Setup | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """A row: ``command`` is split like a shell line (quote empty or odd values)."""
    raw = {k: v.encode() if isinstance(v, str) else v for k, v in (files or {}).items()}
    argv = tuple(shlex.split(command))
    return pytest.param(Case(argv, code, says, raw, setup, env or {}), id=id)


def rules(text: str | bytes, says: str, *, id: str, command: str = "") -> Any:
    """A rules file at ``{tmp}/rules.yaml``, given to ``command`` (default: ``plan``)."""
    line = f"{command or PLAN} --rules {{tmp}}/rules.yaml"
    return case(line, says, files={"rules.yaml": text}, id=id)


def variables(text: str | bytes, says: str, *, id: str) -> Any:
    return case(f"{MIGRATE} --variables {{tmp}}/vars.yaml", says, files={"vars.yaml": text}, id=id)


def snapshot(edit: Callable[[Path], None]) -> Setup:
    """A copy of the exported snapshot at ``{tmp}/snap``, edited."""

    def setup(world: World, tmp: Path) -> None:
        shutil.copytree(world.snap, tmp / "snap")
        edit(tmp / "snap")

    return setup


def write(relative: str, content: str | bytes) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        data = content.encode() if isinstance(content, str) else content
        (root / relative).write_bytes(data)

    return edit


def remove(relative: str) -> Callable[[Path], None]:
    return lambda root: (root / relative).unlink()


def fifo(world: World, tmp: Path) -> None:
    """A FIFO at ``{tmp}-fifo/rules.fifo``: outside ``{tmp}``, which is fingerprinted
    by reading every file (reading a FIFO would block the test as it would Ferry)."""
    (tmp.parent / f"{tmp.name}-fifo").mkdir()
    os.mkfifo(tmp.parent / f"{tmp.name}-fifo" / "rules.fifo")


PLAN = "plan --source {dev} --target {pre}"
MIGRATE = "migrate --source {dev} --target {pre} --backup-store {store}"
FROM_SNAP = "migrate --source {tmp}/snap --target {pre} --backup-store {store}"
EXPORT = "export --source {dev}"
BACKUP = "backup create --database {pre} --store {store} --environment pre"
PROMOTE = "promote --from dev --to pre --output {tmp}/m.yaml"
GIT = f"{PROMOTE} --git-repository https://git.example.com/x.git"
ROLLBACK = "rollback --store {store} --database {pre}"
RESTORE = "restore --store {store} --backup {backup} --database {pre}"
NO_KUBECONFIG = {"KUBECONFIG": "/nonexistent/kubeconfig"}

DEEP = "[" * 5000 + "]" * 5000
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
TABLES_600 = "tables:\n" + "".join(f"  - {{match: t{i}, rule: skip}}\n" for i in range(600))
COLUMNS_17 = ", ".join(f"c{i}" for i in range(17))
COLUMNS_65 = ", ".join(f"c{i}" for i in range(65))
KEY_17 = f"tables: [{{match: roles, rule: skip, key: [{COLUMNS_17}]}}]\n"
IGNORE_65 = f"ignoreColumns: [{COLUMNS_65}]\n"
VARS_10001 = "".join(f"V{i}: x\n" for i in range(10_001))
ONE_TABLE = "tables: [{match: roles, rule: skip, %s}]\n"

# fmt: off
CASES = [
    # --- the command line itself: argparse errors are one line, exit 2 ---------------
    case("", "required: COMMAND", id="no-command"),
    case("teleport", "invalid choice", id="unknown-command"),
    case("plan --target {pre}", "--source", id="plan-missing-source"),
    case(f"{PLAN} --format yaml", "invalid choice", id="plan-bad-format"),
    case(f"{PLAN} --profile wordpress", "--profile", id="plan-unknown-profile"),
    case(f"{PLAN} --profile NOCOBASE", "--profile", id="plan-profile-case"),
    case(f"{PLAN} --bogus", "unrecognized", id="plan-unknown-option"),
    case(f"{PLAN} extra", "unrecognized", id="plan-extra-argument"),
    case(f"{MIGRATE} --id", "expected one argument", id="migrate-id-without-value"),
    case(f"{MIGRATE} --no-b", "unrecognized", id="migrate-abbreviated-option"),
    case(f"{PROMOTE} --sync 1", "unrecognized", id="promote-abbreviated-option"),
    case("backup", "ACTION", id="backup-without-action"),
    case("backup show --store {store}", "id", id="backup-show-without-id"),
    case("run --metrics-port http", "invalid int", id="run-port-not-a-number"),
    # --- odd argument values: empty, NUL, control characters, absurd length ---------
    case("plan --source '' --target {pre}", "empty", id="empty-source"),
    case("plan --source {dev} --target ''", "empty", id="empty-target"),
    case("plan --source {dev} --target '{pre}\x00.db'", "control character", id="nul-in-url"),
    case(f"{PLAN} --rules '{{tmp}}/r\x00.yaml'", "control character", id="nul-in-path"),
    case(f"{MIGRATE} --id 'r1\nr2'", "control character", id="newline-in-id"),
    case(f"{MIGRATE} --environment '\x1b[31mred'", "control character", id="escape-sequence"),
    case("plan --source {dev} --target sqlite:///" + "x" * 5000, "at most", id="very-long-url"),
    case(f"{MIGRATE} --backup-store ''", "empty", id="empty-backup-store"),
    case(f"{MIGRATE} --environment ''", "empty", id="empty-environment"),
    case(f"{EXPORT} --dir ''", "empty", id="export-empty-dir"),
    case("backup list --store ''", "empty", id="backup-list-empty-store"),
    case("backup show '' --store {store}", "empty", id="backup-show-empty-id"),
    case(f"{RESTORE} --tables ''", "empty", id="restore-empty-tables"),
    case("backup create --database {pre} --store {store} --exclude ''", "empty",
         id="backup-create-empty-exclude"),
    # --- migration IDs: checked before any database is touched ----------------------
    case(f"{MIGRATE} --id 'release 42'", "invalid migration ID", id="id-with-space"),
    case(f"{MIGRATE} --id 'release 42' --format json", "invalid migration ID",
         id="id-with-space-json"),
    case(f"{MIGRATE} --id ../../etc/passwd", "invalid migration ID", id="id-traversal"),
    case(f"{MIGRATE} --id a/b", "invalid migration ID", id="id-slash"),
    case(f"{MIGRATE} --id=-rf", "start with a letter", id="id-leading-dash"),
    case(f"{MIGRATE} --id .hidden", "start with a letter", id="id-leading-dot"),
    case(f"{MIGRATE} --id {'x' * 191}", "at most 190", id="id-too-long"),
    case(f"{MIGRATE} --id réléase", "invalid migration ID", id="id-unicode"),
    case(f"{MIGRATE} --id 'r0;DROP TABLE roles'", "invalid migration ID", id="id-sql"),
    case(f"{MIGRATE} --id r0 --id 'a b'", "'a b'", id="id-repeated"),
    # --- backup IDs (the operator's, for a Job): checked before the database is read --
    case(f"{BACKUP} --id 'nightly 1'", "invalid backup ID", id="backup-id-space"),
    case(f"{BACKUP} --id ../pre/x", "invalid backup ID", id="backup-id-traversal"),
    case(f"{BACKUP} --id a/b", "invalid backup ID", id="backup-id-slash"),
    case(f"{BACKUP} --id=-rf", "start with a letter", id="backup-id-leading-dash"),
    case(f"{BACKUP} --id .partial-x", "start with a letter", id="backup-id-hidden"),
    case(f"{BACKUP} --id a..b", "may not hold '..'", id="backup-id-dots"),
    case(f"{BACKUP} --id a+b", "invalid backup ID", id="backup-id-writer-separator"),
    case(f"{BACKUP} --id {'x' * 129}", "at most 128", id="backup-id-too-long"),
    case(f"{BACKUP} --id nightly-ü", "invalid backup ID", id="backup-id-unicode"),
    case(f"{BACKUP} --id ''", "empty", id="backup-id-empty"),
    case(f"{BACKUP} --id {{backup}}", "already exists", id="backup-id-complete-in-store"),
    case(f"{ROLLBACK} --migration 'release 42'", "invalid migration ID", id="rollback-id-space"),
    case(f"{ROLLBACK} --migration ../r0", "invalid migration ID", id="rollback-id-traversal"),
    case(f"{ROLLBACK} --migration r-unknown", "not in the target's ledger",
         id="rollback-unknown-id"),
    case(f"{ROLLBACK} --migration r0 --format xml", "invalid choice", id="rollback-bad-format"),
    # --- rules files: unreadable, not text, not YAML we accept ---------------------
    case(f"{PLAN} --rules {{tmp}}/missing.yaml", "cannot read rules", id="rules-missing"),
    case(f"{PLAN} --rules {{tmp}}", "not a regular file", id="rules-is-a-directory"),
    case(f"{PLAN} --rules /dev/zero", "not a regular file", id="rules-dev-zero"),
    case(f"{PLAN} --rules {{tmp}}-fifo/rules.fifo", "not a regular file", setup=fifo,
         id="rules-fifo"),
    rules(b"\xff\xfesystem: overwrite\n", "not UTF-8", id="rules-utf16-bom"),
    rules(b"system: \xe9crase\n", "not UTF-8", id="rules-latin1"),
    rules(b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary", id="rules-binary"),
    rules(b"# " + b"x" * (5 * 1024 * 1024), "larger than", id="rules-5-mib"),
    rules(b"", "empty", id="rules-empty"),
    rules("# only a comment\n", "empty", id="rules-only-comment"),
    rules("---\n...\n", "empty", id="rules-empty-document"),
    rules("system: [overwrite\n", "not valid YAML", id="rules-broken-yaml"),
    rules("a: 1\n---\nb: 2\n", "not valid YAML", id="rules-two-documents"),
    rules(ALIAS_BOMB, "aliases", id="rules-alias-bomb"),
    rules("x: &r overwrite\nsystem: *r\n", "aliases", id="rules-alias"),
    rules("<<: {system: skip}\nuser: skip\n", "merge keys", id="rules-merge-key"),
    rules(DEEP, "nested deeper", id="rules-nested-5000-deep"),
    rules("system: !!python/object:os.system x\n", "not valid YAML", id="rules-python-tag"),
    rules("system: !custom overwrite\n", "not valid YAML", id="rules-custom-tag"),
    rules("system: skip\nsystem: overwrite\n", "twice", id="rules-duplicate-key"),
    rules("user: overwrite\x07\n", "not valid YAML", id="rules-control-character"),
    # --- rules files: wrong shapes and types for every field ------------------------
    rules("- system: overwrite\n", "expected a mapping", id="rules-a-list"),
    rules("overwrite\n", "expected a mapping", id="rules-a-scalar"),
    rules("system: overwrte\n", "overwrte", id="rules-unknown-rule"),
    rules("system: 5\n", "unknown rule 5", id="rules-int-for-rule"),
    rules("system: 0\n", "unknown rule 0", id="rules-zero-for-rule"),
    rules("system: false\n", "unknown rule False", id="rules-false-for-rule"),
    rules('system: ""\n', "unknown rule", id="rules-empty-rule"),
    rules("user: [overwrite]\n", "unknown rule", id="rules-list-for-rule"),
    rules("user: {a: b}\n", "unknown rule", id="rules-mapping-for-rule"),
    rules("user: 2024-01-01\n", "unknown rule", id="rules-date-for-rule"),
    rules("strict: yes please\n", "true or false", id="rules-strict-string"),
    rules("allowDestructive: 1\n", "true or false", id="rules-destructive-int"),
    rules("sytem: overwrite\n", "unknown field", id="rules-unknown-field"),
    rules("1: overwrite\n", "must be strings", id="rules-int-key"),
    rules("null: overwrite\n", "must be strings", id="rules-null-key"),
    rules("tables: {match: roles}\n", "expected a list", id="rules-tables-mapping"),
    rules("tables: 0\n", "expected a list", id="rules-tables-zero"),
    rules("tables: ''\n", "expected a list", id="rules-tables-empty-string"),
    rules(TABLES_600, "at most 512", id="rules-600-tables"),
    rules("tables: [roles]\n", "expected a mapping", id="rules-table-a-string"),
    rules("tables: [[roles]]\n", "expected a mapping", id="rules-table-a-list"),
    rules("tables: [{match: roles}]\n", "required", id="rules-table-no-rule"),
    rules(ONE_TABLE % "when: always", "unknown field", id="rules-table-unknown-field"),
    rules(ONE_TABLE % "7: x", "must be strings", id="rules-table-int-field"),
    rules("tables: [{match: 5, rule: skip}]\n", "table name", id="rules-match-int"),
    rules("tables: [{match: '', rule: skip}]\n", "table name", id="rules-match-empty"),
    rules("tables: [{match: 'roles[', rule: skip}]\n", "malformed", id="rules-glob-unclosed"),
    rules("tables: [{match: '[]', rule: skip}]\n", "malformed", id="rules-glob-empty-class"),
    rules("tables: [{match: 'a[[b]]', rule: skip}]\n", "malformed", id="rules-glob-nested"),
    rules("tables: [{match: 'a]b[', rule: skip}]\n", "malformed", id="rules-glob-inverted"),
    rules("tables: [{match: 'roles; DROP', rule: skip}]\n", "malformed", id="rules-match-sql"),
    rules("tables: [{match: '../roles', rule: skip}]\n", "malformed", id="rules-match-path"),
    rules("tables: [{match: %s, rule: skip}]\n" % ("t" * 300), "longer than 253",
          id="rules-match-too-long"),
    rules(ONE_TABLE % "key: name", "non-empty list", id="rules-key-a-string"),
    rules(ONE_TABLE % "key: []", "non-empty list", id="rules-key-empty"),
    rules(ONE_TABLE % "key: [1]", "bad key", id="rules-key-int"),
    rules(ONE_TABLE % "key: [{a: b}]", "bad key", id="rules-key-nested"),
    rules(ONE_TABLE % "key: [name, name]", "twice", id="rules-key-twice"),
    rules(KEY_17, "at most 16", id="rules-key-17-columns"),
    rules(ONE_TABLE % f"key: [{'c' * 129}]", "bad key", id="rules-key-name-too-long"),
    rules(ONE_TABLE % "key: ['a\"b']", "bad key", id="rules-key-quote"),
    rules(ONE_TABLE % "ignore: {a: b}", "non-empty list", id="rules-ignore-mapping"),
    rules(ONE_TABLE % "references: [parentId]", "references", id="rules-references-list"),
    rules(ONE_TABLE % "references: {parentId: 5}", "bad table name", id="rules-references-int"),
    rules(ONE_TABLE % "references: {parentId: 'rol*'}", "no globs", id="rules-references-glob"),
    rules(ONE_TABLE % "references: {'1x': roles}", "bad reference",
          id="rules-references-bad-column"),
    rules("ignoreColumns: updatedAt\n", "non-empty list", id="rules-ignore-columns-string"),
    rules(IGNORE_65, "at most 64", id="rules-ignore-columns-65"),
    rules("kind: Migration\nspec: [rules]\n", "not a mapping", id="rules-manifest-spec-list"),
    rules("kind: Migration\nspec: {}\n", "no spec.rules", id="rules-manifest-no-rules"),
    rules("kind: Migration\nspec: {rules: {user: wipe}}\n", "wipe",
          id="rules-manifest-bad-rule"),
    rules(b"user: \xff\n", "not UTF-8", command=MIGRATE, id="migrate-rules-not-utf8"),
    rules(ALIAS_BOMB, "aliases", command=MIGRATE, id="migrate-rules-alias-bomb"),
    rules("user: wipe\n", "wipe", command=f"{MIGRATE} --id r9", id="migrate-rules-bad-rule"),
    rules("[1, 2]\n", "expected a mapping", command=f"{EXPORT} --dir {{tmp}}/out",
          id="export-rules-a-list"),
    rules(b"\xff", "not UTF-8", command=PROMOTE, id="promote-rules-not-utf8"),
    rules("user: wipe\n", "wipe", command=PROMOTE, id="promote-rules-unknown-rule"),
    rules("- a\n", "expected a mapping", command=PROMOTE, id="promote-rules-a-list"),
    # --- variables files -------------------------------------------------------------
    variables(b"HOOK_TOKEN: \xff\n", "not UTF-8", id="variables-not-utf8"),
    variables("", "empty", id="variables-empty"),
    variables("HOOK_TOKEN\n", "expected a list", id="variables-a-scalar"),
    variables("[1, 2]\n", "expected {name, type}", id="variables-list-of-ints"),
    variables("- name: 5\n", "must be a string", id="variables-int-name"),
    variables("- name: null\n", "must be a string", id="variables-null-name"),
    variables("true: x\nHOOK_TOKEN: y\n", "must be a string", id="variables-bool-key"),
    variables("HOOK-TOKEN: x\n", "invalid variable name", id="variables-dash"),
    variables("HOOK_TOKEN: x\nHOOK_TOKEN: y\n", "twice", id="variables-duplicate"),
    variables("? [a, b]\n: c\n", "not valid YAML", id="variables-unhashable-key"),
    variables(VARS_10001, "at most 10000", id="variables-10001"),
    variables(b"\x00\x01\x02", "binary", id="variables-binary"),
    # --- env: sources and targets ----------------------------------------------------
    case("plan --source env:dev --target {pre}", "Kubernetes context", env=NO_KUBECONFIG,
         id="env-source-without-kubeconfig"),
    case("migrate --source {dev} --target env:apps/pre --skip-backup", "Kubernetes context",
         env=NO_KUBECONFIG, id="env-target-without-kubeconfig"),
    case("plan --source env:Dev_Env --target {pre}", "Kubernetes names", id="env-bad-name"),
    case("plan --source env:a/b/c --target {pre}", "Kubernetes names", id="env-nested"),
    case("plan --source env: --target {pre}", "Kubernetes names", id="env-empty"),
    case("plan --source env:/dev --target {pre}", "Kubernetes names", id="env-empty-namespace"),
    # --- snapshot directories with odd manifests --------------------------------------
    case(FROM_SNAP, "not a Ferry snapshot", setup=snapshot(remove("ferry-snapshot.yaml")),
         id="snapshot-without-manifest"),
    case(FROM_SNAP, "snapshot", setup=snapshot(write("ferry-snapshot.yaml", b"\xff\xfe\x00")),
         id="snapshot-manifest-binary"),
    case(FROM_SNAP, "missing", setup=snapshot(remove("tables/roles.yaml")),
         id="snapshot-listed-table-missing"),
    case("plan --source {tmp} --target {pre}", "not a Ferry snapshot", id="source-empty-dir"),
    # --- output directories and files -------------------------------------------------
    case(f"{EXPORT} --dir /proc/ferry-x", "cannot write", id="export-into-proc"),
    case(f"{EXPORT} --dir {{tmp}}/file", "not a directory", files={"file": "x"},
         id="export-dir-is-a-file"),
    case(f"{EXPORT} --dir {{tmp}}/file/sub", "cannot write", files={"file": "x"},
         id="export-dir-below-a-file"),
    case(f"{EXPORT} --dir {{tmp}}/{'d' * 300}", "cannot write", id="export-dir-name-too-long"),
    case("promote --from dev --to pre --output {tmp}/missing/m.yaml", "does not exist",
         id="promote-output-missing-dir"),
    case("promote --from dev --to pre --output {tmp}", "is a directory",
         id="promote-output-is-a-dir"),
    case("promote --from dev --to pre --output /proc/m.yaml", "cannot write",
         id="promote-output-proc"),
    # --- promote: writes only what the cluster, Git and Argo CD will accept ----------
    case(f"{PROMOTE} --sync-wave one", "integer", id="promote-sync-wave-word"),
    case(f"{PROMOTE} --sync-wave 1.5", "integer", id="promote-sync-wave-float"),
    case(f"{PROMOTE} --sync-wave ' 1'", "integer", id="promote-sync-wave-space"),
    case(f"{PROMOTE} --sync-wave 99999999999", "integer", id="promote-sync-wave-huge"),
    case(f"{PROMOTE} --sync-wave 3000000000", "out of range", id="promote-sync-wave-int64"),
    case(f"{GIT} --git-revision main~1", "neither", id="promote-relative-revision"),
    case(f"{GIT} --git-revision 'a b'", "neither", id="promote-revision-space"),
    case(f"{GIT} --git-revision=--upload-pack=x", "neither", id="promote-revision-option"),
    case(f"{GIT} --git-revision v1..v2", "neither", id="promote-revision-range"),
    case(f"{GIT} --git-revision main.lock", "neither", id="promote-revision-lock"),
    case(f"{GIT} --git-revision 'main@{{1}}'", "neither", id="promote-revision-reflog"),
    case(f"{GIT} --git-revision {'r' * 257}", "at most 256", id="promote-revision-too-long"),
    case(f"{GIT} --git-path /etc", "relative", id="promote-path-absolute"),
    case(f"{GIT} --git-path a/../../x", "leaves", id="promote-path-traversal"),
    case(f"{GIT} --git-path 'a b'", "relative", id="promote-path-space"),
    case(f"{GIT} --git-path {'p' * 1025}", "at most 1024", id="promote-path-too-long"),
    case(f"{GIT} --git-secret Repo_Creds", "not a valid object name",
         id="promote-bad-secret-name"),
    case(f"{PROMOTE} --git-repository 'ext::sh -c touch% /tmp/pwned'", "would be invalid",
         id="promote-ext-transport"),
    case(f"{PROMOTE} --git-repository fd::17", "would be invalid", id="promote-fd-transport"),
    case(f"{PROMOTE} --git-repository https://u:hunter2@g/x.git", "credentials",
         id="promote-password-in-url"),
    case(f"{PROMOTE} --git-repository http://g/x.git --git-secret repo", "http://",
         id="promote-secret-over-http"),
    case(f"{PROMOTE} --git-revision v1", "need --git-repository", id="promote-git-without-repo"),
    case(f"{PROMOTE} --name {'x' * 64}", "DNS label", id="promote-name-too-long"),
    case(f"{PROMOTE} --name Release_42", "DNS label", id="promote-name-uppercase"),
    case(f"{PROMOTE} --namespace 'Apps!'", "namespace", id="promote-bad-namespace"),
    case(f"{PROMOTE} --namespace {'n' * 64}", "namespace", id="promote-namespace-too-long"),
    case("promote --from Dev --to pre", "not a valid object name", id="promote-from-uppercase"),
    case("promote --from 'dev;rm' --to pre", "not a valid object name", id="promote-from-odd"),
    case(f"promote --from dev --to {'p' * 64}", "at most 63", id="promote-to-too-long-for-label"),
    case("promote --from dev --to dev", "both", id="promote-same-environment"),
    case(f"{PROMOTE} --approval --plan-digest sha256:XYZ", "would be invalid",
         id="promote-bad-digest"),
    case(f"{PROMOTE} --plan-digest sha256:{'0' * 64}", "--approval",
         id="promote-digest-without-approval"),
    # --- backup, restore, rollback: the CLI's side of them --------------------------
    case("backup show 'r0 ; ls' --store {store}", "invalid backup ID", id="backup-show-bad-id"),
    case("backup verify ../../pre --store {store}", "backup", id="backup-verify-traversal"),
    case("restore --store {tmp}/nostore --backup {backup} --database {pre}", "",
         id="restore-from-missing-store"),
    case(f"{RESTORE} --environment ../../etc", "invalid environment name",
         id="restore-environment-traversal"),
    case("restore --store {store} --backup {backup}", "--database is required",
         id="restore-without-database"),
    case("restore --store {store} --backup {backup}", "",
         env={"FERRY_DATABASE_URL": "postgresql://u@127.0.0.1:1/x?host=/nonexistent"},
         code=75, id="restore-database-from-environment-unreachable"),
    case("rollback --store {store} --migration r0", "--database is required",
         id="rollback-without-database"),
    case("rollback --store {store} --migration r0", "",
         env={"FERRY_DATABASE_URL": "postgresql://u@127.0.0.1:1/x?host=/nonexistent"},
         code=75, id="rollback-database-from-environment-unreachable"),
]
# fmt: on


def _fill(argv: tuple[str, ...], world: World, tmp: Path) -> list[str]:
    values = {
        "dev": world.dev,
        "pre": world.pre,
        "store": str(world.store),
        "snap": str(world.snap),
        "backup": world.backup,
        "tmp": str(tmp),
    }
    out = []
    for arg in argv:
        for name, value in values.items():
            arg = arg.replace("{" + name + "}", value)
        out.append(arg)
    return out


@pytest.mark.parametrize("row", CASES)
def test_hostile_input_is_refused(
    row: Case, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, content in row.files.items():
        (tmp_path / name).write_bytes(content)
    if row.setup is not None:
        row.setup(world, tmp_path)
    for name, value in row.env.items():
        monkeypatch.setenv(name, value)
    watched = [world.pre, world.pre_file, world.dev_file, world.store, world.snap, tmp_path]
    assert_refused(_fill(row.argv, world, tmp_path), row.code, watched, says=row.says)


def test_the_table_is_large_and_covers_every_command() -> None:
    commands = {c.values[0].argv[0] for c in CASES if c.values[0].argv}
    assert len(CASES) >= 80
    assert {"plan", "migrate", "export", "backup", "restore", "rollback", "promote"} <= commands


@pytest.mark.parametrize("server", ["mysql", "postgresql"])
def test_an_invalid_id_leaves_a_server_target_as_it_was(
    make_database: Callable[..., str], tmp_path: Path, server: str
) -> None:
    """MariaDB commits DDL on its own: the ID must be refused before any DDL runs
    (PostgreSQL would roll it back, but must refuse just as early)."""
    target = make_database(server)
    shape.build(target, app="pre", variables=VARS)
    execute(target, "ALTER TABLE roles DROP COLUMN description")  # a schema change pending
    dev = f"sqlite:///{tmp_path}/dev.db"
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    store = tmp_path / "store"
    for bad in ("release 42", "x" * 191, "a/b"):
        assert_refused(
            [
                "migrate",
                "--source",
                dev,
                "--target",
                target,
                "--id",
                bad,
                "--backup-store",
                str(store),
            ],
            2,
            [target, store],
            says="invalid migration ID",
        )


@pytest.mark.parametrize(
    ("option", "content"),
    [
        ("--rules", "root:hunter2-secret:0:0:root:/root:/bin/bash\n"),
        ("--rules", "- hunter2-secret\n"),
        ("--variables", "- {name: 5, value: hunter2-secret}\n"),
        ("--variables", "HOOK_TOKEN: hunter2-secret\n'bad name': hunter2-secret\n"),
    ],
)
def test_a_wrong_file_is_not_echoed_back(
    world: World, tmp_path: Path, option: str, content: str
) -> None:
    """Handing Ferry the wrong file (a password file, a values file with secrets) is
    refused without printing its content: errors reach CI logs and statuses. Names
    (fields, rules, variable names) are quoted back; values and whole documents not."""
    path = tmp_path / "input.yaml"
    path.write_text(content)
    argv = ["migrate", "--source", world.dev, "--target", world.pre, option, str(path)]
    outcome = assert_refused(argv, 2, [world.pre, world.pre_file, world.store])
    assert "hunter2-secret" not in outcome.stderr + outcome.stdout
