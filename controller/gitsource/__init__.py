"""Configuration snapshots as files: written by ``ferry export``, read back as a source.

The format is made for review in Git: one YAML file per table, rows sorted by key,
stable formatting, JSON kept as readable structure when that is exact, no secrets.
"""
