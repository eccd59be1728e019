"""What the voxel store calls: index rows for voxels about to be written, and their text.

Kept apart from :mod:`thunderline.voxel.store` so the store's hook is two lines: build the
rows before the transaction (reading extracted text from the object store is I/O that must
not hold the database), write them inside it with :func:`~thunderline.search.index.index_voxels`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from thunderline.errors import ThunderlineError
from thunderline.search.document import IndexDoc, index_doc

if TYPE_CHECKING:
    from thunderline.objects.base import ObjectStore
    from thunderline.voxel.schema import Voxel


_log = logging.getLogger("thunderline.search")


def voxel_text(objects: ObjectStore, voxel: Voxel, max_chars: int) -> str | None:
    """The head of the voxel's extracted text (None: none, or it cannot be read)."""
    from thunderline.voxel.store import text_sha256

    sha = text_sha256(voxel)
    if sha is None or max_chars <= 0:
        return None
    try:
        # UTF-8 is at most 4 bytes a character: this many bytes hold max_chars characters
        data = objects.get_bytes(sha)[: max_chars * 4]
    except (ThunderlineError, KeyError, OSError) as exc:
        _log.warning("search: text of voxel %s unreadable (%s); indexed without it", voxel.id, exc)
        return None
    return data.decode("utf-8", "replace")[:max_chars]


def docs_for(objects: ObjectStore, voxels: Iterable[Voxel], max_chars: int) -> list[IndexDoc]:
    """The index rows of ``voxels``, their text read from the object store."""
    return [
        index_doc(voxel, voxel_text(objects, voxel, max_chars), max_chars=max_chars)
        for voxel in voxels
    ]
