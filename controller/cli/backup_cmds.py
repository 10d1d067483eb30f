"""``ferry backup create|list|show|verify`` and ``ferry restore``."""

from __future__ import annotations

import argparse
import json

from controller.backups.manifest import Manifest
from controller.backups.store import open_store
from controller.errors import CheckFailed
from controller.reconcile.backup import create_backup, restore, verify


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser("backup", help="create, list, show and verify backups")
    bsub = b.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    c = bsub.add_parser("create", help="back up a database into a store")
    c.add_argument("--database", required=True, metavar="URL")
    c.add_argument(
        "--store", required=True, metavar="STORE", help="directory or s3://bucket/prefix"
    )
    c.add_argument("--environment", metavar="NAME", help="default: the database's name")
    c.add_argument("--tables", metavar="T1,T2")
    c.add_argument("--exclude", metavar="T3", action="append", default=[])
    c.add_argument("--format", default="text", choices=["text", "json"])
    c.set_defaults(func=cmd_create)
    ls = bsub.add_parser("list", help="list complete backups")
    ls.add_argument("--store", required=True)
    ls.add_argument("--environment")
    ls.add_argument("--format", default="text", choices=["text", "json"])
    ls.set_defaults(func=cmd_list)
    sh = bsub.add_parser("show", help="show a backup's manifest")
    sh.add_argument("id")
    sh.add_argument("--store", required=True)
    sh.add_argument("--format", default="text", choices=["text", "json"])
    sh.set_defaults(func=cmd_show)
    v = bsub.add_parser("verify", help="decode every member and check every checksum")
    v.add_argument("id")
    v.add_argument("--store", required=True)
    v.set_defaults(func=cmd_verify)

    r = sub.add_parser("restore", help="restore a backup (all or some tables) into a database")
    r.add_argument("--store", required=True)
    r.add_argument("--backup", required=True, metavar="ID")
    r.add_argument("--database", required=True, metavar="URL")
    r.add_argument("--tables", metavar="T1,T2")
    r.add_argument("--format", default="text", choices=["text", "json"])
    r.set_defaults(func=cmd_restore)


def cmd_create(args: argparse.Namespace) -> int:
    excluded = [t for item in args.exclude for t in (_csv(item) or [])]
    manifest, location = create_backup(
        args.database,
        open_store(args.store),
        environment=args.environment,
        reason="manual",
        tables=_csv(args.tables),
        exclude=excluded,
    )
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
                },
                indent=2,
            )
        )
    else:
        print(
            f"backup {manifest.id}: {len(manifest.members)} table(s), {manifest.rows} row(s), "
            f"{manifest.bytes} bytes at {location}"
        )
    return 0


def _line(m: Manifest) -> str:
    return (
        f"{m.id}  {m.environment:<16} {m.reason:<13} {len(m.members):>4} tables "
        f"{m.rows:>10} rows {m.bytes:>12} bytes"
    )


def cmd_list(args: argparse.Namespace) -> int:
    manifests = open_store(args.store).manifests(args.environment)
    if args.format == "json":
        print(json.dumps([m.summary() for m in manifests], indent=2))
    else:
        for m in manifests:
            print(_line(m))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    manifest = open_store(args.store).manifest(args.id)
    if args.format == "json":
        print(manifest.to_json())
    else:
        print(_line(manifest))
        for member in manifest.members:
            print(
                f"  {member.table:<32} {member.rows:>10} rows {member.bytes:>12} bytes "
                f"sha256:{member.sha256[:16]}…"
            )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    manifest, problems = verify(open_store(args.store), args.id)
    if problems:
        raise CheckFailed(
            f"backup {manifest.id} is damaged", problems=problems, reason="BackupCorrupted"
        )
    print(
        f"backup {manifest.id}: {len(manifest.members)} member(s), {manifest.rows} row(s): "
        "every checksum matches and every member decodes"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    result = restore(open_store(args.store), args.backup, args.database, tables=_csv(args.tables))
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(
            f"restored {len(result.tables)} table(s), {result.rows} row(s) from backup "
            f"{result.backup.id}"
            + (f"; dropped {', '.join(result.dropped)}" if result.dropped else "")
            + (f"; safety backup {result.safety_backup}" if result.safety_backup else "")
        )
    return 0
