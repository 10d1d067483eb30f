"""Which of a database's secret variables a NocoBase key decrypts (``ferry secrets check``).

NocoBase encrypts secret environment variables with a key kept outside the database
(``STORAGE_PATH/apps/<app>/aes_key.dat``, or ``APP_AES_SECRET_KEY``); a backup holds the
ciphertexts, never the key. A database restored into a new installation is only whole
when that installation has the same key: NocoBase itself starts without complaint
otherwise and drops each variable it cannot decrypt. This command says, before or after
the application starts, which ones those are. Names only, never values.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.db.database import Database
from controller.engine import nocobase_secrets
from controller.errors import CheckFailed, InvalidInput

TABLES = ("environmentVariables", "environment_variables")


@dataclass(frozen=True)
class SecretsReport:
    decrypted: tuple[str, ...]


def check_secrets(url: str, key: bytes) -> SecretsReport:
    """The secret variables ``key`` decrypts; CheckFailed naming every one it does not."""
    db = Database(url)
    try:
        with db.reader() as snap:
            schema = snap.schema()
            table = next((t for t in TABLES if schema.table(t) is not None), None)
            if table is None:
                raise InvalidInput(
                    f"{db.label} has no environmentVariables table (is it a NocoBase "
                    "database with the environment-variables plugin?)"
                )
            stored = [
                (str(name), None if value is None else str(value))
                for batch in snap.batches(table, ["name", "type", "value"])
                for name, kind, value in batch
                if kind == "secret"
            ]
    finally:
        db.dispose()
    bad = nocobase_secrets.undecryptable(key, stored)
    if bad:
        raise CheckFailed(
            f"secret variables this key cannot decrypt: {', '.join(bad)}",
            problems=[
                f"secret variables this key cannot decrypt ({len(bad)} of {len(stored)}): "
                + ", ".join(bad),
                "give the application the key of the installation the rows come from "
                "(its aes_key.dat or APP_AES_SECRET_KEY), or set these variables again",
            ],
        )
    return SecretsReport(tuple(sorted(name for name, value in stored if value)))
