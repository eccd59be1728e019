"""Page cursors and filters of the voxel store (the query itself runs in the contract suite)."""

from __future__ import annotations

import pytest

from thunderline.errors import ThunderlineError
from thunderline.voxel.paging import BadCursorError, Cursor


def test_cursor_round_trip_and_garbage() -> None:
    cursor = Cursor(1795782063.583414, "01a21cf3-b5eb-74a9-987a-923c3ceb1376")
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ["", "zzz", "eyJ0cyI6IngifQ", "bm90IGpzb24", "W10"]:
        with pytest.raises(BadCursorError) as info:
            Cursor.decode(bad)
        assert isinstance(info.value, ThunderlineError) and info.value.reason == "bad_cursor"
