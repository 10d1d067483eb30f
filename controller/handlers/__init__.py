"""Kopf handlers: the only Kopf importer; thin adapters from events to ``flows``.

Each handler parses nothing itself: it hands the body to one reconcile function with
the shared :class:`~controller.k8s.client.Cluster`, writes the returned status, posts
the returned events, and asks Kopf to come back when the outcome says so.
"""
