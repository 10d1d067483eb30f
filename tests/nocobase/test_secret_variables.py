"""Secret variables survive a restore into a new installation only with their key.

NocoBase encrypts secret variables with a key in its storage directory
(``STORAGE_PATH/apps/main/aes_key.dat``), never in the database, and a backup holds only
the ciphertexts. Restored into a new installation given the same key file, every secret
decrypts (NocoBase boots without a ``bad decrypt``); given another key, ``ferry secrets
check`` names each variable that cannot be decrypted — the ones NocoBase then logs
``bad decrypt`` for and drops.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup, restore
from controller.engine import nocobase_secrets as ns
from tests.db.dbhelpers import rows
from tests.harness.nocobase import NocoBaseApp
from tests.hostile import assert_refused, run_cli
from tests.nocobase import builder as b
from tests.nocobase.conftest import AppFactory

# PostgreSQL only on real NocoBase (CI time): the key lives in the storage directory,
# not the database, so the dialect changes nothing here; the release cycle runs on all
# three (test_release_cycle.py).
pytestmark = [
    pytest.mark.nocobase,
    pytest.mark.parametrize("nocobase_dialect", ["postgresql"], indirect=True, scope="module"),
]

SECRETS = {"ERP_TOKEN": "erp-tok-SECRET", "MAIL_PASSWORD": "mail-pw-SECRET"}
KEY_FILE = Path("apps") / "main" / "aes_key.dat"


def _restored(make_app: AppFactory, name: str, store: FilesystemStore, backup: str) -> NocoBaseApp:
    app = make_app(name, empty=True)
    restore(store, backup, app.url)
    return app


def test_a_restore_decrypts_every_secret_only_with_the_same_key_file(
    make_app: AppFactory, tmp_path: Path
) -> None:
    dev = make_app("sdev")
    dev.start()
    dev.sign_in()
    b.declare_variables(
        dev,
        {"ERP_BASE": ("default", "https://erp.test")}
        | {name: ("secret", value) for name, value in SECRETS.items()},
    )
    dev.stop()
    store = FilesystemStore(tmp_path / "store")
    manifest, _ = create_backup(dev.url, store, environment="dev")
    assert not (
        set(SECRETS.values())
        & {str(v) for r in rows(dev.url, "environmentVariables", "value", order="name") for v in r}
    )

    # The same key: dev's aes_key.dat carried into the new installation's storage.
    same = _restored(make_app, "ssame", store, manifest.id)
    (same.storage / KEY_FILE).parent.mkdir(parents=True)
    shutil.copyfile(dev.storage / KEY_FILE, same.storage / KEY_FILE)
    out = run_cli(
        ["secrets", "check", "--database", same.url, "--key-file", str(same.storage / KEY_FILE)]
    )
    assert out.code == 0, out.stderr
    assert out.stdout == "2 secret variable(s) decrypt with this key: ERP_TOKEN, MAIL_PASSWORD\n"
    key = ns.parse_key_file((same.storage / KEY_FILE).read_bytes())
    stored = dict(rows(same.url, "environmentVariables", "name", "value", order="name"))
    assert {n: ns.decrypt(key, stored[n]) for n in SECRETS} == SECRETS
    same.start()
    same.sign_in()
    b.assert_boots_cleanly(same)  # NocoBase logs "bad decrypt" for a secret it cannot read
    same.stop()

    # Another key (the new installation's own): Ferry names both; NocoBase fails on both.
    other = _restored(make_app, "sother", store, manifest.id)
    (other.storage / KEY_FILE).parent.mkdir(parents=True)
    (other.storage / KEY_FILE).write_bytes(os.urandom(32))
    result = assert_refused(
        ["secrets", "check", "--database", other.url, "--key-file", str(other.storage / KEY_FILE)],
        2,
        watched=[other.url],
        says="secret variables this key cannot decrypt (2 of 2): ERP_TOKEN, MAIL_PASSWORD",
    )
    assert not any(v in result.stderr + result.stdout for v in SECRETS.values())
    other.start()
    other.stop()
    assert other.log_text().count("bad decrypt") >= len(SECRETS), other.log_tail()
