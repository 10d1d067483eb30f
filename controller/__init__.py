"""Ferry: release management for database-backed no-code applications.

The package is layered (see docs/architecture.md and .importlinter): ``handlers``
adapt Kopf's events to the operator's ``flows``; the flows and the ``cli`` call the
``commands`` (plan, migrate, back up, restore, roll back, export), which drive the
adapters ``db``, ``backups``, ``gitsource`` and ``k8s``; all of them build on the pure
``engine`` and the typed ``api`` views.
"""

__version__ = "0.1.0.dev0"
