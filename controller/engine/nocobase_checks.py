"""NocoBase's own pre-checks, made before a ``nocobase`` promotion changes anything.

NocoBase's backup restorer (``@nocobase/plugin-backup-restore``, ``Restorer.checkMeta``)
refuses a package taken under other naming settings or by a newer NocoBase; a promotion
copies the same configuration rows, so it must refuse the same cases, naming the values.

NocoBase reads the naming settings from its process environment, not from its database,
but each one leaves a trace in the database that Ferry reads:

* ``DB_UNDERSCORED`` — the spelling of its tables (``applicationPlugins`` or
  ``application_plugins``);
* ``DB_TABLE_PREFIX`` — the prefix every NocoBase table carries (``nb_applicationPlugins``);
* ``COLLECTION_MANAGER_SCHEMA`` (PostgreSQL) — recorded in every collection's
  ``options.schema`` (``COLLECTION_MANAGER_SCHEMA``, else ``DB_SCHEMA``, else ``public``):
  a promoted collection row carries the source's schema into the target.

``DB_SCHEMA`` itself leaves no row: it decides which schema NocoBase's tables are in,
which is the schema the Environment's database URL selects (``search_path``).

The application version is ``applicationVersion.value``; plugins are
``applicationPlugins`` rows (``name``, ``enabled``). This module is pure: the commands
layer reads the rows (:mod:`controller.commands.nocobase_facts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import semver

from controller.api.reasons import PreCheckReason
from controller.engine.catalog import underscored
from controller.errors import CheckFailed

# Tables every NocoBase installation has; their spelling tells the naming settings.
ANCHORS = ("applicationPlugins", "applicationVersion")
_SHOWN = 80  # characters of a value read from a database, as shown in a message


@dataclass(frozen=True)
class Naming:
    """The naming settings as the database shows them."""

    underscored: bool
    table_prefix: str

    def table(self, name: str) -> str:
        """The table NocoBase uses for the collection ``name`` under these settings."""
        return self.table_prefix + (underscored(name) if self.underscored else name)


@dataclass(frozen=True)
class Installation:
    """What one side's database says about the NocoBase that owns it (None: unknown)."""

    naming: Naming | None = None
    collection_schemas: frozenset[str] = frozenset()  # PostgreSQL only
    version: str | None = None
    plugins: Mapping[str, bool] | None = None  # name → enabled


@dataclass(frozen=True)
class Finding:
    reason: PreCheckReason
    message: str


@dataclass(frozen=True)
class PreCheck:
    problems: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


def detect_naming(tables: Iterable[str]) -> Naming | None:
    """The naming whose spelling of every anchor table exists; None when none does.

    With several (a database holding two installations' tables), the unprefixed
    camelCase one first, then the shortest prefix: the order is fixed, never a guess
    that changes between runs.
    """
    names = set(tables)
    found: list[Naming] = []
    for spelled_underscored in (False, True):
        first = underscored(ANCHORS[0]) if spelled_underscored else ANCHORS[0]
        for table in names:
            if not table.endswith(first):
                continue
            naming = Naming(spelled_underscored, table[: len(table) - len(first)])
            if all(naming.table(anchor) in names for anchor in ANCHORS):
                found.append(naming)
    if not found:
        return None
    return min(found, key=lambda n: (len(n.table_prefix), n.table_prefix, n.underscored))


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}…"


def _naming_findings(source: Installation, target: Installation) -> list[Finding]:
    out: list[str] = []
    src, tgt = source.naming, target.naming
    if src is not None and tgt is not None:
        if src.underscored != tgt.underscored:
            out.append(
                f"DB_UNDERSCORED is {str(src.underscored).lower()} in the source "
                f"({src.table('applicationPlugins')}), {str(tgt.underscored).lower()} in the "
                f"target ({tgt.table('applicationPlugins')})"
            )
        if src.table_prefix != tgt.table_prefix:
            out.append(
                f"DB_TABLE_PREFIX is {_shown(src.table_prefix)} in the source, "
                f"{_shown(tgt.table_prefix)} in the target"
            )
    s_schemas, t_schemas = source.collection_schemas, target.collection_schemas
    if s_schemas and t_schemas and s_schemas != t_schemas:
        out.append(
            "COLLECTION_MANAGER_SCHEMA (or DB_SCHEMA where it is unset) differs: the "
            f"source's collections are in schema {_names(s_schemas)}, the target's in "
            f"{_names(t_schemas)}"
        )
    return [
        Finding(
            PreCheckReason.NAMING_SETTINGS_DIFFER,
            f"NocoBase naming settings differ: {text}; NocoBase would not find the promoted tables",
        )
        for text in out
    ]


def _names(values: Iterable[str]) -> str:
    """Values read from a database: as they are when short and printable, else quoted."""
    plain = (v if v.isprintable() and len(v) <= _SHOWN else _shown(v) for v in sorted(values))
    return ", ".join(plain)


def _parse(version: str) -> semver.Version | None:
    try:
        return semver.Version.parse(version.strip().removeprefix("v"))
    except (ValueError, TypeError):
        return None


def _version_findings(source: Installation, target: Installation) -> tuple[list[Finding], str]:
    """Refuse a target older than the source; a version that is not SemVer is warned
    about (NocoBase's are), not guessed at."""
    if source.version is None or target.version is None:
        return [], ""
    src, tgt = _parse(source.version), _parse(target.version)
    if src is None or tgt is None:
        bad = source.version if src is None else target.version
        return [], (
            f"NocoBase version {_shown(bad)} is not a semantic version: source and "
            "target versions were not compared"
        )
    if tgt.compare(src) < 0:
        return [
            Finding(
                PreCheckReason.TARGET_VERSION_OLDER,
                f"the target runs NocoBase {tgt}, older than the source's {src}: "
                "upgrade the target first",
            )
        ], ""
    return [], ""


def _plugin_text(source: Installation, target: Installation) -> str:
    if source.plugins is None or target.plugins is None:
        return ""
    gone = []
    for name in sorted(n for n, enabled in source.plugins.items() if enabled):
        state = target.plugins.get(name)
        if state is None:
            gone.append(f"{_names([name])} (absent)")
        elif not state:
            gone.append(f"{_names([name])} (disabled)")
    if not gone:
        return ""
    return "plugins enabled in the source are not enabled in the target: " + ", ".join(gone)


def precheck(source: Installation, target: Installation, *, strict: bool) -> PreCheck:
    """Every problem at once, so a user fixes them in one round."""
    problems = _naming_findings(source, target)
    version_problems, version_warning = _version_findings(source, target)
    problems += version_problems
    warnings = [version_warning] if version_warning else []
    plugins = _plugin_text(source, target)
    if plugins and strict:
        problems.append(Finding(PreCheckReason.PLUGINS_MISSING, plugins + " (strict mode)"))
    elif plugins:
        warnings.append(plugins)
    return PreCheck(tuple(problems), tuple(warnings))


def require(check: PreCheck) -> list[str]:
    """The warnings; raises one :class:`CheckFailed` naming every problem, with the
    reason of the first (naming, then version, then plugins)."""
    if check.problems:
        texts = [f.message for f in check.problems]
        raise CheckFailed("; ".join(texts), problems=texts, reason=check.problems[0].reason)
    return list(check.warnings)
