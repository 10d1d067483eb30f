"""Shared test configuration: real database servers come from the harness plugin."""

pytest_plugins = ["tests.harness.pytest_plugin"]
