"""Ferry: release management for database-backed no-code applications.

The package is layered (see docs/architecture.md and .importlinter): ``cli`` and
``handlers`` call ``reconcile``, which drives the adapters ``db``, ``backups``,
``gitsource`` and ``k8s``; all of them build on the pure ``engine`` and the typed
``api`` views.
"""

__version__ = "0.1.0.dev0"
