"""The rollback record is encoded a chunk at a time, and still reads as the one document
it always was: ``json.dumps(doc, sort_keys=True)``, byte for byte (records already in
stores, and their readers, see no difference)."""

from __future__ import annotations

import json
from typing import Any

import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.engine import post_state
from controller.engine.model import ColumnType, Kind
from controller.engine.undo import ColumnWatch, TableRecord

_text = st.text(min_size=0, max_size=12)  # any code point: quotes, escapes, surrogates
_keys = st.lists(_text.map(lambda s: "s:" + s), min_size=1, max_size=2).map(tuple)
_digest = st.one_of(st.none(), st.text("0123456789abcdef", min_size=32, max_size=32))


def _document(migration_id: str, records: list[TableRecord]) -> dict[str, Any]:
    """The document as encode built it whole, before it streamed the written rows."""
    tables = {
        r.table: post_state._record_doc(r, [[list(k), d] for k, d in sorted(r.written.items())])
        for r in records
    }
    return {"format": post_state.FORMAT, "migration": migration_id, "tables": tables}


@st.composite
def _records(draw: st.DrawFn) -> list[TableRecord]:
    names = draw(st.lists(_text, min_size=0, max_size=3, unique=True))
    records = []
    for name in names:
        written = draw(st.dictionaries(_keys, _digest, max_size=30))
        watch_rows = draw(st.dictionaries(_keys, _digest.filter(bool), max_size=3))
        records.append(
            TableRecord(
                table=name,
                key=("id",),
                compared=("name", name),
                pk=("id",),
                types={"id": ColumnType(kind=Kind.TEXT), name: ColumnType(kind=Kind.JSON)},
                ops=(("add-column", name),),
                written=written,
                watches=(ColumnWatch(name, None, rows=watch_rows),) if watch_rows else (),
            )
        )
    return records


@settings(max_examples=200, deadline=None)
@given(records=_records(), migration_id=_text)
def test_streamed_record_is_the_whole_document_byte_for_byte(
    records: list[TableRecord], migration_id: str
) -> None:
    data = post_state.encode(migration_id, records)
    text = zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 24)
    assert text == json.dumps(_document(migration_id, records), sort_keys=True).encode()
    decoded = post_state.decode(data, "the record")
    assert {t: r.written for t, r in decoded.items()} == {r.table: r.written for r in records}


def test_written_rows_past_one_chunk_keep_their_order_and_separators() -> None:
    written = {(f"i:{n}",): f"{n:032x}" for n in range(2 * post_state._CHUNK_ROWS + 7)}
    record = TableRecord("t", ("id",), ("v",), ("id",), {}, written=written)
    data = post_state.encode("m", [record])
    assert zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 26) == (
        json.dumps(_document("m", [record]), sort_keys=True).encode()
    )
    assert post_state.decode(data, "the record")["t"].written == written
