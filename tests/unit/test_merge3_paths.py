"""IDs held inside strings: a materialised path ("/1/5/9") follows its table's ID map."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.engine.idmapping import PathMap
from controller.engine.model import ColumnType, Kind

BIGINT = ColumnType(Kind.BIGINT, native="BIGINT")
_ids = st.integers(min_value=1, max_value=10**12)


@given(st.lists(_ids, min_size=1, max_size=8), st.dictionaries(_ids, _ids, max_size=10))
def test_every_segment_is_mapped_and_nothing_else_changes(
    path: list[int], mapping: dict[int, int]
) -> None:
    paths = PathMap("desktopRoutes", BIGINT, {f"i:{s}": t for s, t in mapping.items()})
    text = "/" + "/".join(map(str, path))
    assert paths.target_id(text) == "/" + "/".join(str(mapping.get(p, p)) for p in path)


def test_values_that_are_not_paths_are_left_alone() -> None:
    paths = PathMap("desktopRoutes", BIGINT, {"i:5": 9})
    assert paths.target_id(None) is None
    assert paths.target_id(5) == 5  # not a string: another column's business
    assert paths.target_id("/5/x/50") == "/9/x/50"  # only whole segments
    assert PathMap("t", BIGINT, {}).target_id("/5") == "/5"
