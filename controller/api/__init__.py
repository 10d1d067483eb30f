"""Typed, validated views of the custom resources' spec and of the rules file.

Pure: parsing dictionaries (from YAML or from the Kubernetes API) into frozen
dataclasses. The CRDs in ``crds/`` are the schema; this package mirrors them.
"""
