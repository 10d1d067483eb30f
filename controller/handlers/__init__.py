"""Kopf handlers: thin adapters from events to ``controller.reconcile`` (issue #4)."""
