"""The drill's row-by-row comparison of two Arrow streams, whatever their batching."""

from __future__ import annotations

import pyarrow as pa

from controller.commands.drill import _first_difference, _Rows

SCHEMA = pa.schema([("id", pa.int64()), ("title", pa.string())])


def _batches(rows: list[tuple[int, str]], sizes: list[int]) -> list[pa.RecordBatch]:
    out, at = [], 0
    for size in sizes:
        part = rows[at : at + size]
        at += size
        out.append(
            pa.record_batch(
                [pa.array([r[0] for r in part]), pa.array([r[1] for r in part])], schema=SCHEMA
            )
        )
    assert at == len(rows)
    return out


ROWS = [(i, f"row {i}") for i in range(1, 101)]


def _compare(a: list[pa.RecordBatch], b: list[pa.RecordBatch]) -> tuple[str | None, int, int]:
    archived, restored = _Rows(a), _Rows(b)
    difference = _first_difference(archived, restored)
    archived.drain()
    restored.drain()
    return difference, archived.count, restored.count


def test_equal_rows_in_different_batches_match() -> None:
    a = _batches(ROWS, [100])
    b = _batches(ROWS, [1, 0, 33, 7, 59])  # an empty batch, too
    assert _compare(a, b) == (None, 100, 100)
    assert _compare(b, a) == (None, 100, 100)


def test_the_first_differing_row_is_named_across_batch_edges() -> None:
    changed = [*ROWS[:40], (41, "edited"), *ROWS[41:]]
    assert _compare(_batches(ROWS, [39, 61]), _batches(changed, [10, 50, 40])) == (
        "row 41 differs from the archive",
        100,
        100,
    )


def test_missing_and_extra_rows_show_in_the_counts() -> None:
    assert _compare(_batches(ROWS, [100]), _batches(ROWS[:99], [50, 49])) == (None, 100, 99)
    assert _compare(_batches(ROWS[:99], [99]), _batches(ROWS, [100])) == (None, 99, 100)
    assert _compare(_batches(ROWS, [100]), []) == (None, 100, 0)
