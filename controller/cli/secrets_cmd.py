"""``ferry secrets check``: does this key decrypt every secret variable of a database?

Run it after restoring a NocoBase database into a new installation, with the key that
installation will use (its ``aes_key.dat``, or a file holding ``APP_AES_SECRET_KEY``):
exit 0 when every secret variable decrypts, 2 naming each one that does not.
"""

from __future__ import annotations

import argparse
import os
import stat

from controller.cli.files import shown
from controller.cli.inputs import resolve_database
from controller.commands.secrets_check import check_secrets
from controller.engine import nocobase_secrets
from controller.errors import InvalidInput

KEY_FILE_LIMIT = 1024  # a key is 32 bytes, or 64 hex digits


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("secrets", help="check NocoBase's encrypted secret variables")
    ssub = s.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    c = ssub.add_parser(
        "check", help="name the secret variables a key cannot decrypt (exit 2 if any)"
    )
    c.add_argument("--database", required=True, help="database URL or env:[NAMESPACE/]NAME")
    c.add_argument(
        "--key-file",
        required=True,
        metavar="FILE",
        help="NocoBase's aes_key.dat (32 bytes) or a file with APP_AES_SECRET_KEY (64 hex)",
    )
    c.set_defaults(func=cmd_check)


def read_key_file(path: str) -> bytes:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"key file {shown(path)} is not a regular file")
        with open(path, "rb") as handle:
            raw = handle.read(KEY_FILE_LIMIT + 1)
    except (OSError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise InvalidInput(f"cannot read key file {shown(path)}: {reason}") from err
    if len(raw) > KEY_FILE_LIMIT:
        raise InvalidInput(f"key file {shown(path)} is larger than {KEY_FILE_LIMIT} bytes")
    return nocobase_secrets.parse_key_file(raw)


def cmd_check(args: argparse.Namespace) -> int:
    key = read_key_file(args.key_file)
    report = check_secrets(resolve_database(args.database), key)
    names = ", ".join(report.decrypted) or "none"
    print(f"{len(report.decrypted)} secret variable(s) decrypt with this key: {names}")
    return 0
