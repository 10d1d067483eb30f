"""A restore's proof of its backup: every member decoded and every checksum checked
before anything the restore writes is committed.

Where the restore's writes are one transaction that the database can roll back with its
DDL (PostgreSQL) and no files are restored, the proof runs beside the safety backup and
the writes (it reads the store, they read and write the database) and is awaited just
before the commit; a damaged backup then rolls the transaction back and removes the
safety backup just taken, so nothing is changed either way. Elsewhere (MySQL/MariaDB,
where DDL commits on its own; SQLite; restores with files) the proof comes first.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from controller.backups.archive import verify_backup
from controller.backups.fileroots import FilesRoot
from controller.backups.files_archive import verify_files, wanted_paths
from controller.backups.manifest import Manifest
from controller.backups.store import BackupStore
from controller.errors import CheckFailed


def _problems(store: BackupStore, manifest: Manifest, files: FilesRoot | None) -> list[str]:
    problems = verify_backup(store, manifest)
    if files is not None:
        problems += verify_files(store, manifest)
    return problems


class Proof:
    """Started on construction; :meth:`check` raises ``BackupCorrupted`` if it failed."""

    def __init__(
        self, store: BackupStore, manifest: Manifest, files: FilesRoot | None, beside: bool
    ) -> None:
        if files is not None and manifest.files is None:
            raise CheckFailed(
                f"backup {manifest.id} holds no files (it was taken without a files root); "
                "restore it without one, or choose a backup with files; nothing was changed",
                reason="NoFilesInBackup",
            )
        self._store, self._manifest = store, manifest
        self._problems: list[str] = []
        self._discarded: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._found: Future[list[str]] | None = None
        if beside and files is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="ferry-proof")
            self._found = self._pool.submit(_problems, store, manifest, None)
            return
        self._problems = _problems(store, manifest, files)
        self.check()
        if files is not None:
            files.check_target(wanted_paths(manifest, files))

    def check(self, discard: str | None = None) -> None:
        """Wait for the proof; if the backup is damaged, remove the safety backup
        ``discard`` (taken meanwhile, of a target left unchanged) and refuse."""
        if self._found is not None:
            self._problems, self._found = self._found.result(), None
        if not self._problems:
            return
        if discard is not None and discard != self._discarded:
            self._store.delete(self._store.manifest(discard))
            self._discarded = discard
        raise CheckFailed(
            f"backup {self._manifest.id} is damaged; nothing was changed",
            problems=self._problems,
            reason="BackupCorrupted",
        )

    def close(self) -> None:
        """Let a proof still running finish (it only reads the store)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
