"""Backups: the versioned archive format, the stores it lives in, and retention.

Pure of databases: the archive is written from and read into streams of raw row
batches, which ``controller.db`` produces and consumes. See docs/backup-format.md.
"""
