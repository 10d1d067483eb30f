"""The ``ferry`` command: the same engine and use cases as the operator, without a cluster."""
