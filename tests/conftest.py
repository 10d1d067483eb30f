"""Shared test configuration: real servers come from the harness plugins."""

pytest_plugins = ["tests.harness.pytest_plugin", "tests.harness.s3server"]
