"""Backups: the archive format, stores (filesystem, S3) and retention (issue #3)."""
