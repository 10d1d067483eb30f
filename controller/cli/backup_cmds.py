"""``ferry backup create|list|show|verify|rekey|drill`` and ``ferry restore``."""

from __future__ import annotations

import argparse
import json
import os

from controller.api.backup import Reason
from controller.api.ids import validate_backup_id
from controller.backups.manifest import Manifest
from controller.backups.store import KEY_FILE_ENV, BackupStore, open_store
from controller.cli.files_root import add_files_arguments, files_root
from controller.cli.parsing import add_names_argument
from controller.cli.progress import add_progress_to_argument, progress_for
from controller.cli.result import write_restored, write_result
from controller.cli.stopping import terminated_as_exit
from controller.commands.backup import create_backup, restore, verify
from controller.commands.drill import DrillResult, drill
from controller.commands.rekey import REWRAPPED, RekeyOutcome, rekey
from controller.db.urls import with_password
from controller.errors import CheckFailed, InvalidInput

# How a Kubernetes Job's container gets its database (docs/concepts.md, "Job mode"): from
# Secrets through its environment, never through its arguments.
DATABASE_ENV = "FERRY_DATABASE_URL"
PASSWORD_ENV = "FERRY_DATABASE_PASSWORD"


def database_url(
    given: str | None,
    flag: str = "--database",
    env: str = DATABASE_ENV,
    password_env: str = PASSWORD_ENV,
) -> str:
    """``--database``, else ``$FERRY_DATABASE_URL`` (and ``$FERRY_DATABASE_PASSWORD``);
    ``ferry migrate`` reads its ``--target`` and ``--source`` the same way."""
    if given:
        return given
    url = os.environ.get(env)
    if not url:
        raise InvalidInput(f"{flag} is required (or set ${env})")
    return with_password(url, os.environ.get(password_env))


def add_store_key_argument(parser: argparse.ArgumentParser) -> None:
    """``--store-key-file``: every command that opens a store takes it."""
    parser.add_argument(
        "--store-key-file",
        metavar="FILE",
        help="the store's keyring (signs manifests and post-migration states, and "
        f'encrypts backups when it says "encrypt": true; default: ${KEY_FILE_ENV})',
    )


def _store(args: argparse.Namespace) -> BackupStore:
    return open_store(args.store, args.store_key_file)


def _store_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_)
    p.add_argument(
        "--store", required=True, metavar="STORE", help="directory or s3://bucket/prefix"
    )
    add_store_key_argument(p)
    return p


def _create_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = _store_parser(sub, "create", "back up a database into a store")
    c.add_argument(
        "--database",
        metavar="URL",
        help=f"default: ${DATABASE_ENV} (with ${PASSWORD_ENV} as its password, if set)",
    )
    c.add_argument("--environment", metavar="NAME", help="default: the database's name")
    c.add_argument("--reason", default="manual", choices=[r.value for r in Reason])
    c.add_argument(
        "--id",
        dest="backup_id",
        metavar="ID",
        help="the backup's ID (default: a new one); a store that holds it complete "
        "refuses, and what an earlier, stopped writer of it left is removed: run one "
        "writer of an ID at a time (the operator's Jobs do)",
    )
    add_names_argument(c, "--tables", "back up only these tables (names or globs)")
    add_names_argument(c, "--exclude", "back up every table but these (names or globs)")
    add_files_arguments(c, "back up")
    c.add_argument("--format", default="text", choices=["text", "json"])
    add_progress_to_argument(c)
    c.set_defaults(func=cmd_create)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser("backup", help="create, list, show and verify backups")
    bsub = b.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    _create_parser(bsub)
    ls = _store_parser(bsub, "list", "list complete backups")
    ls.add_argument("--environment")
    ls.add_argument("--format", default="text", choices=["text", "json"])
    ls.set_defaults(func=cmd_list)
    sh = _store_parser(bsub, "show", "show a backup's manifest")
    sh.add_argument("id")
    sh.add_argument("--format", default="text", choices=["text", "json"])
    sh.set_defaults(func=cmd_show)
    v = _store_parser(bsub, "verify", "decode every member and check every checksum")
    v.add_argument("id")
    v.set_defaults(func=cmd_verify)
    rk = _store_parser(
        bsub, "rekey", "re-wrap encrypted backups' data keys with the keyring's current key"
    )
    rk.add_argument("ids", nargs="*", metavar="ID", help="default: every backup")
    rk.add_argument("--environment", metavar="NAME")
    rk.add_argument("--format", default="text", choices=["text", "json"])
    rk.set_defaults(func=cmd_rekey)
    d = _store_parser(
        bsub, "drill", "restore a backup into an empty scratch database, check it, clear it"
    )
    d.add_argument("id")
    d.add_argument(
        "--scratch",
        required=True,
        metavar="URL",
        help="an empty database (on the same server, or a SQLite file, created and removed "
        "if it does not exist); everything the drill creates in it is dropped afterwards",
    )
    d.add_argument("--format", default="text", choices=["text", "json"])
    d.set_defaults(func=cmd_drill)
    _register_restore(sub)


def _register_restore(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = _store_parser(sub, "restore", "restore a backup (all or some tables) into a database")
    r.add_argument("--backup", required=True, metavar="ID")
    r.add_argument(
        "--database",
        metavar="URL",
        help=f"default: ${DATABASE_ENV} (with ${PASSWORD_ENV} as its password, if set)",
    )
    r.add_argument(
        "--environment",
        metavar="NAME",
        help="the target's name in the store, for its safety backup (default: the backup's)",
    )
    add_names_argument(r, "--tables", "restore only these tables of the backup")
    r.add_argument(
        "--force",
        action="store_true",
        help="restore even into a database other than the one the backup was taken from",
    )
    add_files_arguments(r, "restore")
    r.add_argument(
        "--quiesced",
        action="store_true",
        help="the application is stopped: the safety backup records its files as exact",
    )
    r.add_argument("--format", default="text", choices=["text", "json"])
    add_progress_to_argument(r)
    r.set_defaults(func=cmd_restore)


def cmd_create(args: argparse.Namespace) -> int:
    validate_backup_id(args.backup_id)
    store = _store(args)
    files = files_root(args)
    with terminated_as_exit() as guard:
        with progress_for(args) as progress:
            manifest, location = create_backup(
                database_url(args.database),
                store,
                environment=args.environment,
                reason=args.reason,
                tables=args.tables,
                exclude=args.exclude or [],
                progress=progress,
                files=files,
                quiesced=args.quiesced,
                on_publish=guard.finish,
                backup_id=args.backup_id,
            )
        write_result(
            "completed",
            id=manifest.id,
            environment=manifest.environment,
            tables=len(manifest.members),
            rows=manifest.rows,
            bytes=manifest.bytes,
        )
        _print_created(args, manifest, location)
    return 0


def _print_created(args: argparse.Namespace, manifest: Manifest, location: str) -> None:
    if args.format == "json":
        print(
            json.dumps(
                {
                    "id": manifest.id,
                    "location": location,
                    "tables": len(manifest.members),
                    "rows": manifest.rows,
                    "bytes": manifest.bytes,
                    "checksum": manifest.checksum,
                    "files": manifest.summary()["files"],
                },
                indent=2,
            )
        )
    else:
        held = f", {len(manifest.files.entries)} file(s)" if manifest.files else ""
        print(
            f"backup {manifest.id}: {len(manifest.members)} table(s), {manifest.rows} row(s)"
            f"{held}, {manifest.bytes} bytes at {location}, {manifest.integrity}"
        )


def _line(m: Manifest) -> str:
    return (
        f"{m.id}  {m.environment:<16} {m.reason:<13} {len(m.members):>4} tables "
        f"{m.rows:>10} rows {m.bytes:>12} bytes  {m.integrity}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    manifests = _store(args).manifests(args.environment)
    if args.format == "json":
        print(json.dumps([m.summary() for m in manifests], indent=2))
    else:
        for m in manifests:
            print(_line(m))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    manifest = _store(args).manifest(args.id)
    if args.format == "json":
        print(manifest.to_json())
    else:
        print(_line(manifest))
        print(f"  format {manifest.version}, {manifest.integrity}")
        source = manifest.source.describe() if manifest.source else "not recorded (format 1)"
        print(f"  taken from: {source}")
        for member in manifest.members:
            print(
                f"  {member.table:<32} {member.rows:>10} rows {member.bytes:>12} bytes "
                f"sha256:{member.sha256[:16]}…"
            )
        if manifest.files:
            f = manifest.files
            print(
                f"  files: {len(f.entries)} ({f.bytes} bytes) from {f.source}, {f.consistency} "
                f"(rows of {f.snapshot_at}, files copied {f.copied_from} to {f.copied_until})"
            )
            if f.skipped:
                shown = ", ".join(repr(p) for p in f.skipped[:5])
                print(f"  not backed up (symlinks, special files): {len(f.skipped)}: {shown}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    manifest, problems = verify(_store(args), args.id)
    if problems:
        raise CheckFailed(
            f"backup {manifest.id} is damaged", problems=problems, reason="BackupCorrupted"
        )
    held = f", {len(manifest.files.entries)} file(s)" if manifest.files else ""
    print(
        f"backup {manifest.id}: {len(manifest.members)} member(s), {manifest.rows} row(s){held}: "
        f"every checksum matches and every member decodes; manifest {manifest.integrity}"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    store = _store(args)
    files = files_root(args)
    with terminated_as_exit() as guard, progress_for(args) as progress:
        guard.done = "the restore was already committed"
        result = restore(
            store,
            args.backup,
            database_url(args.database),
            tables=args.tables,
            environment=args.environment,
            force=args.force,
            progress=progress,
            files=files,
            quiesced=args.quiesced,
            on_written=guard.finish,
        )
        write_restored(result)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        put = result.files
        print(
            f"restored {len(result.tables)} table(s), {result.rows} row(s) from backup "
            f"{result.backup.id} ({result.backup.integrity})"
            + (f"; dropped {', '.join(result.dropped)}" if result.dropped else "")
            + (f"; safety backup {result.safety_backup}" if result.safety_backup else "")
            + (
                f"; files: {put.written} written, {put.unchanged} unchanged, "
                f"{len(put.displaced)} moved aside to {put.root}/.ferry-displaced/{put.stamp}/"
                if put
                else ""
            )
        )
    return 0


def _rekey_line(outcome: RekeyOutcome) -> str:
    what = {
        REWRAPPED: f"data key re-wrapped: {outcome.key_before} -> {outcome.key_after}",
        "current": f"already under the current key {outcome.key_after}",
        "unencrypted": "not encrypted: left as it is",
    }[outcome.action]
    return f"{outcome.backup_id}  {outcome.environment:<16} {what}"


def cmd_rekey(args: argparse.Namespace) -> int:
    text = args.format == "text"
    outcomes = rekey(
        _store(args),
        environment=args.environment,
        backup_ids=args.ids,
        after_each=(lambda o: print(_rekey_line(o), flush=True)) if text else None,
    )
    if not text:
        print(json.dumps([o.to_dict() for o in outcomes], indent=2))
    else:
        done = sum(o.action == REWRAPPED for o in outcomes)
        print(f"{done} of {len(outcomes)} backup(s) re-wrapped")
    return 0


def _drill_text(result: DrillResult) -> None:
    for check in result.tables:
        rows = "-" if check.rows is None else str(check.rows)
        what = f"{rows} of {check.expected_rows} rows"
        print(f"{'ok' if check.ok else 'FAILED':<6} {check.table:<32} {what:>24}", end="")
        print(f"  {check.problem}" if check.problem else "")
    for problem in result.problems:
        print(f"FAILED {problem}")
    if result.files is not None:
        files = result.files
        print(f"{'ok' if files.ok else 'FAILED':<6} {'files':<32} {files.count:>13} file(s)")
        for problem in files.problems:
            print(f"FAILED {problem}")
    m = result.backup
    if result.passed:
        verdict = f"passed: {len(result.tables)} table(s), {m.rows} row(s) restored and matched"
    else:
        bad = sum(not t.ok for t in result.tables)
        verdict = f"FAILED: {bad} of {len(m.members)} table(s) do not match the manifest"
        if not result.tables:
            verdict = "FAILED: the backup did not restore"
        elif not bad and result.files is not None and not result.files.ok:
            verdict = f"FAILED: {len(result.files.problems)} file member(s) are damaged"
    print(
        f"drill of backup {m.id} ({m.integrity}) into {result.scratch}: {verdict} "
        f"in {result.seconds:.1f}s; the scratch database was cleared"
    )


def cmd_drill(args: argparse.Namespace) -> int:
    store = _store(args)
    with terminated_as_exit(), progress_for(args) as progress:
        result = drill(store, args.id, args.scratch, progress)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _drill_text(result)
    return 0 if result.passed else 1
