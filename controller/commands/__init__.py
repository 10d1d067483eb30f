"""Use cases shared by the ``ferry`` command line and the operator's flows.

Plan, migrate, back up, restore, roll back, export, resolve an Environment: each is a
function whose dependencies (database URLs, a backup store, a cluster client) are
passed in, never global — one named command layer, as ``alembic.command`` is for
Alembic. The CLI calls these directly; the operator's ``flows`` call them and turn the
results into Kubernetes status.
"""
