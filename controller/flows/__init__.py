"""The operator's reconcile flows: read one object, call the commands, build its status.

A flow turns a custom resource's body into a typed spec, calls the ``commands`` that do
the work, and returns an :class:`~controller.flows.outcome.Outcome` — the status patch,
conditions and events — through an injected ``Cluster`` client. Flows never talk to a
database or a store except through the commands, and never import Kopf: the handlers
adapt Kopf's events to them, so every branch runs under a fake cluster in unit tests.
"""
