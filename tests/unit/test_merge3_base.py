"""The base of a (source, target) pair: how a source is named, which ledger row names
its base, and the stored form of a base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard

from controller.commands.merging import decode_base, encode_base, source_identity
from controller.db.ledger import LedgerEntry, latest_from


def test_a_source_keeps_its_identity_across_credentials_and_revisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = "postgresql+psycopg://ferry:{}@db.dev:5432/app"
    assert source_identity(pg.format("old")) == source_identity(pg.format("rotated"))
    assert source_identity(pg.format("x")) != source_identity(pg.format("x") + "2")
    assert "old" not in source_identity(pg.format("old"))
    git = "git+https://tok:{}@git.example/cfg.git#revision={}&path=apps/a"
    assert source_identity(git.format("a", "r1")) == source_identity(git.format("b", "r2"))
    assert source_identity(git.format("a", "r1")) != source_identity(
        git.format("a", "r1").replace("apps/a", "apps/b")
    )
    monkeypatch.chdir(tmp_path)
    assert source_identity("sqlite:///dev.db") == source_identity(f"sqlite:///{tmp_path}/dev.db")
    assert source_identity("snap") == source_identity(str(tmp_path / "snap"))


def _entry(id: str, started: str, *, result: str = "succeeded", **summary: object) -> LedgerEntry:
    return LedgerEntry(id, "sha256:x", "fp", result, None, started, started, dict(summary))


def test_the_base_is_the_last_promotion_from_that_source_the_target_still_holds() -> None:
    entries = [
        _entry("a1", "2026-11-01", format=3, source="A", base={"backupId": "b1"}),
        _entry("b1", "2026-11-02", format=3, source="B", base={"backupId": "b2"}),
        _entry("a2", "2026-11-03", format=3, source="A", base={"backupId": "b3"}),
        _entry("a3", "2026-11-04", result="rolled-back", format=3, source="A"),
        _entry("a4", "2026-11-05", result="undone", format=3, source="A"),
    ]
    assert latest_from(entries, "A") == entries[2]
    assert latest_from(entries, "B") == entries[1]
    assert latest_from(entries, "C") is None


def test_ledger_rows_of_an_older_format_name_no_source() -> None:
    older = [
        _entry("old", "2026-12-01", format=2, source="A", base={"backupId": "b"}),
        _entry("older", "2026-12-02", source="A"),  # format 1: no "format" at all
        _entry("odd", "2026-12-03", format="3", source="A"),  # not an integer
    ]
    assert latest_from(older, "A") is None


def test_a_base_round_trips_and_anything_else_is_refused() -> None:
    tables = {"pages": {("s:home",): {"title": "s:Home", "body": "\x00null"}}}
    assert decode_base(encode_base("m-1", tables)) == (tables, {})
    ids = {"pages": {("s:home",): ("i:7", "i:3")}}
    assert decode_base(encode_base("m-1", tables, ids)) == (tables, ids)
    for data in (
        b"not zstd",
        zstandard.ZstdCompressor().compress(b"[1, 2]"),
        zstandard.ZstdCompressor().compress(b'{"format": 99, "tables": {}}'),
        zstandard.ZstdCompressor().compress(b'{"format": 1, "tables": {"t": [[1]]}}'),
        zstandard.ZstdCompressor().compress(b'{"format": 1}'),
    ):
        with pytest.raises(ValueError):
            decode_base(data)


def test_a_base_of_format_1_is_read_without_ids() -> None:
    """What format 1 stored (rows by key, nothing else) is still a base: merged by key
    alone; a third element in a format 1 row is not read as IDs."""
    doc = {
        "format": 1,
        "migration": "m-0",
        "tables": {"pages": [[["s:home"], {"title": "s:Home"}, ["i:1", "i:2"]]]},
    }
    data = zstandard.ZstdCompressor().compress(json.dumps(doc).encode())
    assert decode_base(data) == ({"pages": {("s:home",): {"title": "s:Home"}}}, {})
