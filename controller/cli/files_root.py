"""``--files ROOT`` and ``--environment-file FILE``: where the application's files are.

``ferry backup create`` copies them into the backup, ``ferry restore`` puts them back.
ROOT is a directory, ``s3://bucket/prefix`` (credentials from the standard AWS_*
variables), or ``env:[NAMESPACE/]NAME`` for an Environment's ``spec.files`` in the
current kube context; ``--environment-file`` reads ``spec.files`` from an Environment
manifest on disk (its S3 credentials then come from AWS_*, there is no cluster to ask).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from controller.api.environment import parse_environment
from controller.api.environment_files import FilesSpec
from controller.backups.fileroots import DirectoryRoot, FilesRoot, S3Root
from controller.backups.s3store import s3_client
from controller.cli.inputs import ENV_PREFIX, parse_environment_ref
from controller.cli.yamlfile import load_yaml
from controller.errors import InvalidInput


def add_files_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--files",
        metavar="ROOT",
        help=f"{verb} the application's files too: a directory, s3://bucket/prefix, or "
        "env:[NAMESPACE/]NAME (that Environment's spec.files)",
    )
    where.add_argument(
        "--environment-file",
        metavar="FILE",
        help=f"{verb} the files of this Environment manifest's spec.files",
    )
    parser.add_argument(
        "--files-exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="a path below the files root never backed up nor touched (repeatable; "
        "environment-variables, NocoBase's key directory, always is)",
    )
    if verb == "back up":
        parser.add_argument(
            "--quiesced",
            action="store_true",
            help="the application is stopped: the manifest records its files as exact "
            "(default: copied after the rows' snapshot)",
        )


def _from_spec(files: FilesSpec, exclude: list[str], client: object = None) -> FilesRoot:
    patterns = (*files.exclude, *exclude)
    if files.path:
        return DirectoryRoot(Path(files.path), patterns)
    s3 = files.s3
    assert s3 is not None
    return S3Root(s3.bucket, s3.prefix, client or s3_client(s3.endpoint, s3.region), patterns)


def _from_cluster(spec: str, exclude: list[str]) -> FilesRoot:
    from controller.cli.inputs import _cluster
    from controller.commands.environments import lookup

    namespace, name = parse_environment_ref(spec)
    env = lookup(_cluster(spec), namespace, name)
    if env.files is None:
        raise InvalidInput(f"Environment {namespace}/{name} declares no spec.files")
    if isinstance(env.files, DirectoryRoot):
        return DirectoryRoot(env.files.root, (*env.files.exclude, *exclude))
    assert isinstance(env.files, S3Root)
    return S3Root(
        env.files.bucket, env.files.prefix, env.files.client, (*env.files.exclude, *exclude)
    )


def files_root(args: argparse.Namespace) -> FilesRoot | None:
    """The files root the command line names, or None."""
    exclude = list(args.files_exclude)
    if args.environment_file:
        spec = parse_environment(load_yaml(args.environment_file, "Environment"))
        if spec.files is None:
            raise InvalidInput(f"Environment file {args.environment_file} has no spec.files")
        return _from_spec(spec.files, exclude)
    root: str | None = args.files
    if root is None:
        if exclude:
            raise InvalidInput("--files-exclude needs --files or --environment-file")
        return None
    if root.startswith(ENV_PREFIX):
        return _from_cluster(root, exclude)
    if root.startswith("s3://"):
        bucket, _, prefix = root[len("s3://") :].partition("/")
        if not bucket or any(part in (".", "..") for part in prefix.split("/")):
            raise InvalidInput(f"--files {root!r}: expected s3://bucket/prefix without . or ..")
        return S3Root(bucket, prefix, s3_client(), exclude)
    if "://" in root:
        raise InvalidInput(f"--files {root!r}: a directory, s3://bucket/prefix or env:NAME")
    return DirectoryRoot(Path(root), exclude)
