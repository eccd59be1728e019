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
    from sqlalchemy.engine import Connection

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


def current_docs_for(
    conn: Connection,
    objects: ObjectStore,
    voxels: Iterable[Voxel],
    max_chars: int,
    texts: dict[str, str | None] | None = None,
) -> list[IndexDoc]:
    """The index rows of ``voxels`` as their *current* result versions describe them.

    A reprocessed stage's current version stands in for the sealed result (entities, model
    labels, the extracted text), read in ``conn``'s transaction, so a row written there agrees
    with the result versions committed with it. ``texts`` (text SHA-256 -> text, filled in as
    read) lets a caller read the text before its transaction; a text not in it is read here.
    """
    from thunderline.voxel.results import current_results, current_view
    from thunderline.voxel.store import text_sha256

    voxels = list(voxels)
    found = current_results(conn, [v.id for v in voxels])
    cache = {} if texts is None else texts
    docs = []
    for voxel in voxels:
        view = current_view(voxel, found.get(voxel.id, {}))
        sha = text_sha256(view)
        if sha is not None and sha not in cache:
            cache[sha] = voxel_text(objects, view, max_chars)
        docs.append(index_doc(view, None if sha is None else cache[sha], max_chars=max_chars))
    return docs
