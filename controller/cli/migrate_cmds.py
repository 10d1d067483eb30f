"""``ferry plan``, ``ferry migrate`` and ``ferry export``."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

from controller.api.ids import validate_migration_id
from controller.api.migration import PLAN_DIGEST_PATTERN
from controller.api.rules import Merge
from controller.backups.store import BackupStore, open_store
from controller.cli import rehearse_opts
from controller.cli.backup_cmds import DATABASE_ENV, add_store_key_argument, database_url
from controller.cli.files import create_output_dir, discard, shown
from controller.cli.files_root import add_files_arguments, files_root
from controller.cli.git_source import add_git_credentials_argument, checked_out
from controller.cli.inputs import plan_options, resolve_database
from controller.cli.parsing import deprecated_alias
from controller.cli.progress import add_progress_to_argument, progress_for
from controller.cli.result import write_migrated, write_rolled_back
from controller.commands.export import export
from controller.commands.migrate import MigrationRequest, MigrationResult, migrate, plan_only
from controller.commands.rehearsal import RehearsalResult, rehearse
from controller.commands.rollback import rollback
from controller.engine.render import plan_json, plan_markdown, plan_text
from controller.errors import FerryError, InvalidInput, PermanentError

# A Job's container gets the source's database as it gets the target's (docs/concepts.md,
# "Job mode"): from Secrets through its environment, never through its arguments.
SOURCE_ENV = "FERRY_SOURCE_DATABASE_URL"
SOURCE_PASSWORD_ENV = "FERRY_SOURCE_DATABASE_PASSWORD"
_PLAN_DIGEST = re.compile(PLAN_DIGEST_PATTERN)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", metavar="FILE", help="rules YAML (or a Migration manifest)")
    p.add_argument("--profile", default="nocobase", choices=["nocobase", "generic"])


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_plan(sub)
    _register_migrate(sub)
    _register_rollback(sub)
    _register_export(sub)


def _register_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plan", help="show what a promotion would change, changing nothing")
    p.add_argument(
        "--source",
        required=True,
        metavar="SRC",
        help="database URL, export dir, git+URL#revision=REV&path=DIR, or "
        "env:[NAMESPACE/]NAME (an Environment in the current kube context)",
    )
    p.add_argument(
        "--target", required=True, metavar="URL", help="database URL or env:[NAMESPACE/]NAME"
    )
    _common(p)
    add_git_credentials_argument(p)
    p.add_argument("--variables", metavar="FILE")
    p.add_argument("--format", default="text", choices=["text", "json", "markdown"])
    p.add_argument("--verbose", "-v", action="store_true", help="list unchanged tables too")
    p.add_argument(
        "--backup-store",
        metavar="STORE",
        help="where a three-way merge's base is read (merge: threeWay; default: "
        "$FERRY_BACKUP_STORE, else none: planned without a base)",
    )
    add_store_key_argument(p)
    p.set_defaults(func=cmd_plan)


def _register_migrate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = sub.add_parser("migrate", help="promote configuration into the target")
    m.add_argument(
        "--source",
        metavar="SRC",
        help=f"database URL, export dir or git+URL#revision=REV&path=DIR (default: ${SOURCE_ENV})",
    )
    add_git_credentials_argument(m)
    m.add_argument("--target", metavar="URL", help=f"default: ${DATABASE_ENV}")
    m.add_argument(
        "--approved-digest",
        metavar="DIGEST",
        help="apply only the plan with this digest (sha256:…); a plan that changed since "
        "is refused (PlanChanged) and nothing is written",
    )
    _common(m)
    m.add_argument("--variables", metavar="FILE")
    m.add_argument(
        "--id",
        dest="migration_id",
        metavar="ID",
        help="migration ID (re-running a succeeded ID changes nothing)",
    )
    m.add_argument("--format", default="text", choices=["text", "json"])
    m.add_argument(
        "--backup-store",
        metavar="STORE",
        help="where the pre-migration backup goes (default: $FERRY_BACKUP_STORE, "
        "else ./ferry-backups)",
    )
    add_store_key_argument(m)
    skip = m.add_argument(
        "--skip-backup",
        action="store_true",
        help="take no pre-migration backup (a Migration's spec.backup.skip)",
    )
    deprecated_alias(m, "--no-backup", skip)
    m.add_argument(
        "--environment",
        metavar="NAME",
        help="the target's name in the backup store (default: its database name)",
    )
    add_files_arguments(m, "back up")
    rehearse_opts.add_arguments(m)
    add_progress_to_argument(m)
    m.set_defaults(func=cmd_migrate)


def _register_rollback(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("rollback", help="undo exactly what one migration changed")
    r.add_argument("--store", required=True, metavar="STORE")
    add_store_key_argument(r)
    r.add_argument("--migration", required=True, metavar="ID")
    r.add_argument("--database", metavar="URL", help="the target (default: $FERRY_DATABASE_URL)")
    r.add_argument(
        "--force", action="store_true", help="discard exactly the listed later edits and roll back"
    )
    r.add_argument("--format", default="text", choices=["text", "json"])
    add_progress_to_argument(r)
    r.set_defaults(func=cmd_rollback)


def _register_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e = sub.add_parser("export", help="write a reviewable configuration snapshot")
    e.add_argument("--source", required=True, metavar="URL")
    e.add_argument("--dir", required=True, metavar="DIR")
    _common(e)
    e.set_defaults(func=cmd_export)


def cmd_plan(args: argparse.Namespace) -> int:
    options = plan_options(args.profile, args.rules, args.variables)
    spec = args.backup_store or os.environ.get("FERRY_BACKUP_STORE")
    if spec and options.rules.merge is Merge.THREE_WAY:  # the store is read for nothing else
        options = replace(options, base_store=open_store(spec, args.store_key_file))
    source, target = resolve_database(args.source), resolve_database(args.target)
    with checked_out(source, args, options) as (source, options), progress_for(args) as progress:
        plan = plan_only(source, target, options, progress).plan
    if args.format == "json":
        print(plan_json(plan))
    elif args.format == "markdown":
        print(plan_markdown(plan), end="")
    else:
        print(plan_text(plan, verbose=args.verbose))
    return 0


def _databases(args: argparse.Namespace) -> tuple[str, str]:
    """The source's and the target's database: the arguments, else the environment's."""
    source = resolve_database(args.source) if args.source else None
    target = resolve_database(args.target) if args.target else None
    return (
        database_url(source, "--source", SOURCE_ENV, SOURCE_PASSWORD_ENV),
        database_url(target, "--target"),
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    validate_migration_id(args.migration_id)
    approved = args.approved_digest
    if approved is not None and not _PLAN_DIGEST.fullmatch(approved):
        raise InvalidInput(f"--approved-digest {approved!r}: expected sha256: and 64 hex digits")
    options = plan_options(args.profile, args.rules, args.variables)
    scratch = rehearse_opts.scratch_of(args)
    files = files_root(args)
    if files is not None and args.skip_backup:
        raise InvalidInput(
            "--files and --environment-file name what the pre-migration backup holds; "
            "--skip-backup takes none"
        )
    store = None
    if not args.skip_backup:
        spec = args.backup_store or os.environ.get("FERRY_BACKUP_STORE") or "ferry-backups"
        store = open_store(spec, args.store_key_file)
    source, target = _databases(args)
    with checked_out(source, args, options) as (source, options):
        request = MigrationRequest(
            source,
            target,
            options,
            store=store,
            migration_id=args.migration_id,
            approved_digest=approved,
            environment=args.environment,
            files=files,
            quiesced=args.quiesced,
        )
        return _migrate(args, request, store, scratch)


def _migrate(
    args: argparse.Namespace,
    request: MigrationRequest,
    store: BackupStore | None,
    scratch: str | None,
) -> int:
    rehearsal = None
    with progress_for(args) as progress:
        request = replace(request, progress=progress)
        if scratch is not None:
            rehearsal = rehearse(request, scratch, store=store, progress=progress)
            if not rehearsal.passed:
                return _rehearsal_failed(args, rehearsal)
            # the real apply is held to the plan the copy took
            request = replace(request, approved_digest=rehearsal.digest)
        result = migrate(request)
    write_migrated(result)
    _print_result(args, result, rehearsal, store)
    if result.status in ("failed", "rolled-back"):
        print(f"error: {result.message}", file=sys.stderr)
        return 1
    return 0


def _rehearsal_failed(args: argparse.Namespace, rehearsal: RehearsalResult) -> int:
    """A failed rehearsal: exit 1, the target untouched (only read by the backup)."""
    if args.format == "json":
        print(json.dumps({"rehearsal": rehearse_opts.rehearsal_json(rehearsal)}, indent=2))
    else:
        print(rehearse_opts.rehearsal_text(rehearsal))
    print(
        f"error: rehearsal failed ({rehearsal.reason}), the target was not touched: "
        f"{rehearsal.message}",
        file=sys.stderr,
    )
    return 1


def _print_result(
    args: argparse.Namespace,
    result: MigrationResult,
    rehearsal: RehearsalResult | None,
    store: BackupStore | None,
) -> None:
    if args.format == "json":
        out = result.to_dict()
        if rehearsal is not None:
            out["rehearsal"] = rehearse_opts.rehearsal_json(rehearsal)
        print(json.dumps(out, indent=2))
        return
    if rehearsal is not None:
        print(rehearse_opts.rehearsal_text(rehearsal))
    if result.plan is not None:
        print(plan_text(result.plan))
    print(
        f"migration {result.id}: {result.status}"
        + (f" — {result.message}" if result.message else "")
    )
    if store is None:
        print("pre-migration backup: skipped (--skip-backup)")
    elif result.backup_id:
        print(f"pre-migration backup: {result.backup_id} in {store.label}")


def cmd_export(args: argparse.Namespace) -> int:
    options = plan_options(args.profile, args.rules, None)
    directory = Path(args.dir)
    created = create_output_dir(directory, "export directory")
    try:
        result = export(resolve_database(args.source), directory, options)
    except FerryError:
        discard(created)
        raise
    except OSError as err:
        discard(created)
        raise PermanentError(
            f"writing the snapshot into {shown(directory)} failed: {err.strerror or err}"
        ) from err
    print(f"exported {result.tables} table(s) ({result.with_rows} with rows) to {result.directory}")
    for w in result.warnings:
        print(f"warning: {w}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    validate_migration_id(args.migration)
    store = open_store(args.store, args.store_key_file)
    url = database_url(args.database)
    with progress_for(args) as progress:
        result = rollback(store, args.migration, url, force=args.force, progress=progress)
        write_rolled_back(result)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(
        f"migration {result.migration_id} rolled back from backup {result.backup_id}: "
        f"restored {', '.join(result.tables) or 'no table'}"
        + (f"; dropped {', '.join(result.dropped)}" if result.dropped else "")
    )
    for edit in result.later_edits:
        print(f"  overwritten later edit: {edit}")
    return 0
