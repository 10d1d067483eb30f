"""Re-wrap encrypted backups' data keys with the store's current key (``backup rekey``).

Rotating a store key must not mean rewriting every backup: a format 3 backup's members
are encrypted with its own data key, and only that 32-byte key, wrapped by a store key,
changes. Each backup's manifest is replaced in one atomic step (a rename, or one S3
PUT), so a rekey stopped at any point leaves every backup readable with the old key or
the new one: keep both in the keyring until a rekey has finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from controller.backups.crypto import wrap
from controller.backups.manifest import Manifest
from controller.backups.store import BackupStore
from controller.errors import InvalidInput

#: What happened to one backup.
REWRAPPED = "rewrapped"
CURRENT = "current"
UNENCRYPTED = "unencrypted"


@dataclass(frozen=True)
class RekeyOutcome:
    backup_id: str
    environment: str
    action: str  # REWRAPPED, CURRENT (already under the current key) or UNENCRYPTED
    key_before: str | None
    key_after: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "backupId": self.backup_id,
            "environment": self.environment,
            "action": self.action,
            "keyBefore": self.key_before,
            "keyAfter": self.key_after,
        }


def _selected(
    store: BackupStore, environment: str | None, backup_ids: Sequence[str]
) -> list[Manifest]:
    if backup_ids:
        return [store.manifest(backup_id, environment) for backup_id in backup_ids]
    return store.manifests(environment)


def rekey(
    store: BackupStore,
    *,
    environment: str | None = None,
    backup_ids: Sequence[str] = (),
    after_each: Callable[[RekeyOutcome], None] | None = None,
) -> list[RekeyOutcome]:
    """Re-wrap every encrypted backup (of ``environment``, or ``backup_ids``) whose data
    key is wrapped by another key than the keyring's current one. Every manifest is
    read (and so proven) before the first is rewritten."""
    keyring = store.keyring
    if keyring is None:
        raise InvalidInput(
            "backup rekey needs the store key (--store-key-file, FERRY_STORE_KEY_FILE)",
            reason="StoreKeyRequired",
        )
    outcomes = []
    for manifest in _selected(store, environment, backup_ids):
        encryption = manifest.encryption
        if encryption is None:
            outcome = RekeyOutcome(manifest.id, manifest.environment, UNENCRYPTED, None, None)
        elif encryption.key_id == keyring.current:
            key = encryption.key_id
            outcome = RekeyOutcome(manifest.id, manifest.environment, CURRENT, key, key)
        else:
            rewrapped = replace(manifest, encryption=wrap(keyring, encryption.cipher))
            store.replace_manifest(rewrapped)
            outcome = RekeyOutcome(
                manifest.id, manifest.environment, REWRAPPED, encryption.key_id, keyring.current
            )
        outcomes.append(outcome)
        if after_each:
            after_each(outcome)
    return outcomes
