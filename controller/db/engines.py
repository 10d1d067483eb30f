"""Connection pools kept across calls, for a long-running process (the operator).

A migration reaches its target in several phases (plan, pre-migration backup, apply,
verification, the new baseline), each through its own :class:`Database`; without this
module each phase creates an engine and opens a new connection (a TLS and
authentication round trip on a server). The operator turns sharing on at start-up;
then every :class:`Database` of an Environment's URL draws on one pool per URL: no new
connection, and SQLAlchemy's statement cache (per engine) stays warm. A pooled SQLite
connection is used again only while its path still names the file it opened
(:mod:`controller.db.connect`): a file replaced under the same path is opened afresh.

Pools are owned by Environments: :meth:`Engines.bind` records which URL an Environment
resolved to, and disposes the pool of its previous URL (a new Secret, another host)
once no Environment uses it; :meth:`Engines.release` does the same when an Environment
is deleted. At most ``size`` pools are kept, the least recently used disposed first.
The CLI keeps one engine per call (sharing off): a command leaves no connection open.

Keys and everything this module logs or shows hold no password: a database is known by
its redacted URL and a keyed hash of the whole URL (a per-process key), which tells
credentials apart without revealing them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import sqlalchemy as sa

from controller.db.connect import (
    Identity,
    check_sqlite_file,
    create_engine,
    dialect_of,
    identity,
)


class Engines:
    """Shared engines by database identity, bound to their owners (Environments)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.enabled = False
        self._engines: OrderedDict[Identity, sa.Engine] = OrderedDict()
        self._owners: dict[str, Identity] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Engines(enabled={self.enabled}, databases={[k[0] for k in self.entries()]})"

    def shares(self, url: str) -> bool:
        """Whether ``url`` draws on a kept pool: sharing is on, the database is a
        server, and an Environment resolved to this URL (a rehearsal's scratch copy, a
        URL nobody owns, gets an engine of its own, closed at the end of its use)."""
        if not self.enabled:
            return False
        key = identity(url)
        with self._lock:
            return key in self._owners.values()

    def engine(self, url: str) -> sa.Engine:
        """The shared engine of ``url``, created on first use (only if :meth:`shares`)."""
        key = identity(url)
        if dialect_of(url) == "sqlite":
            check_sqlite_file(url)  # deleted since: refused as a new engine would be
        with self._lock:
            engine = self._engines.get(key)
            if engine is not None:
                self._engines.move_to_end(key)
                return engine
        created = create_engine(url)  # outside the lock: it checks the URL's options
        with self._lock:
            engine = self._engines.setdefault(key, created)
            self._engines.move_to_end(key)
            evicted = self._evict()
        if engine is not created:
            created.dispose()
        for old in evicted:
            old.dispose()
        return engine

    def _evict(self) -> list[sa.Engine]:
        evicted = []
        while len(self._engines) > self.size:
            _, engine = self._engines.popitem(last=False)
            evicted.append(engine)
        return evicted

    def bind(self, owner: str, url: str) -> None:
        """``owner`` (namespace/name of an Environment) now uses ``url``: the pool of
        its previous URL is disposed if no other owner uses it."""
        key = identity(url)
        with self._lock:
            previous = self._owners.get(owner)
            self._owners[owner] = key
            stale = self._drop_unowned(previous) if previous not in (None, key) else None
        if stale is not None:
            stale.dispose()

    def release(self, owner: str) -> None:
        """``owner`` is gone: dispose its pool unless another owner uses it."""
        with self._lock:
            previous = self._owners.pop(owner, None)
            stale = self._drop_unowned(previous) if previous is not None else None
        if stale is not None:
            stale.dispose()

    def _drop_unowned(self, key: Identity | None) -> sa.Engine | None:
        if key is None or key in self._owners.values():
            return None
        return self._engines.pop(key, None)

    def entries(self) -> list[Identity]:
        with self._lock:
            return list(self._engines)

    def dispose_all(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
            self._owners.clear()
        for engine in engines:
            engine.dispose()


ENGINES = Engines()
