"""Kubernetes edge: status, conditions, events and Secret reading (issue #4)."""
