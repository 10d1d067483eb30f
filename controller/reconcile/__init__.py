"""Use cases shared by the operator and the CLI: plan, migrate, back up, restore.

Dependencies (databases, stores, clocks) are passed in; nothing here is global, so
the same functions run under Kopf handlers, under the ``ferry`` command and in tests.
"""
