"""Voxel queries for the API: filters, text search over NLP entities, opaque cursors.

Newest first by ``(ts, id)``. The label and the time range are SQL conditions on indexed
columns; the text search is first narrowed in SQL (``doc`` contains the words) and then matched
exactly against the entities' text; the content group is matched on the decoded voxel. A page
reads rows in chunks until it has ``limit`` matches (or has scanned :data:`MAX_SCAN` rows), and
its cursor points after the last row *scanned*, so the next page neither repeats nor skips.
A cursor is base64url JSON ``{"ts": float, "id": str}``; anything else is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from thunderline.api.errors import ApiError
from thunderline.voxel.schema import Voxel
from thunderline.voxel.store import VoxelStore
from thunderline.voxel.tables import voxels

CHUNK = 200
MAX_SCAN = 5000


@dataclass(frozen=True)
class VoxelFilter:
    label: str | None = None
    group: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    entity_type: str | None = None
    model_label: str | None = None


@dataclass(frozen=True)
class Cursor:
    ts: float
    id: str

    def encode(self) -> str:
        raw = json.dumps({"ts": self.ts, "id": self.id}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            padded = text + "=" * (-len(text) % 4)
            raw = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            ts, vid = raw["ts"], raw["id"]
            if not isinstance(ts, int | float) or not isinstance(vid, str) or len(vid) > 64:
                raise ValueError("wrong field types")
            return cls(float(ts), vid)
        except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error) as exc:
            raise ApiError(
                400, "bad_cursor", "the cursor is not one this API returned (use `next_cursor`)"
            ) from exc


def entity_texts(voxel: Voxel) -> list[str]:
    nlp = voxel.traits.get("nlp")
    if not isinstance(nlp, dict):
        return []
    return [str(e.get("text", "")) for e in nlp.get("entities", []) if isinstance(e, dict)]


def group_of(voxel: Voxel) -> str | None:
    classification = voxel.traits.get("classification")
    if isinstance(classification, dict) and classification.get("group") is not None:
        return str(classification["group"])
    return None


def entity_labels(voxel: Voxel) -> set[str]:
    nlp = voxel.traits.get("nlp")
    if not isinstance(nlp, dict):
        return set()
    return {str(e.get("label", "")).upper() for e in nlp.get("entities", []) if isinstance(e, dict)}


def model_label_of(voxel: Voxel) -> str | None:
    """The inference model's top label, if the voxel has an inference result."""
    inference = voxel.traits.get("inference")
    top = inference.get("top_k") if isinstance(inference, dict) else None
    if isinstance(top, list) and top and isinstance(top[0], dict) and "label" in top[0]:
        return str(top[0]["label"])
    return None


def matches(voxel: Voxel, flt: VoxelFilter) -> bool:
    """The conditions SQL cannot decide; labels, groups and entity types ignore case."""
    if flt.group and (group_of(voxel) or "").casefold() != flt.group.casefold():
        return False
    if flt.entity_type and flt.entity_type.upper() not in entity_labels(voxel):
        return False
    if flt.model_label and (model_label_of(voxel) or "").casefold() != flt.model_label.casefold():
        return False
    if flt.q:
        needle = flt.q.casefold()
        if not any(needle in text.casefold() for text in entity_texts(voxel)):
            return False
    return True


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def page(
    store: VoxelStore, flt: VoxelFilter, *, limit: int, cursor: str | None
) -> tuple[list[Voxel], str | None]:
    """One page of voxels (newest first) and the cursor of the next page (None at the end)."""
    after = Cursor.decode(cursor) if cursor else None
    found: list[Voxel] = []
    scanned = 0
    last: Cursor | None = None
    exhausted = False
    while len(found) < limit and scanned < MAX_SCAN:
        stmt: Any = select(voxels).order_by(voxels.c.ts_unix.desc(), voxels.c.id.desc())
        position = last or after
        if position is not None:
            stmt = stmt.where(
                or_(
                    voxels.c.ts_unix < position.ts,
                    and_(voxels.c.ts_unix == position.ts, voxels.c.id < position.id),
                )
            )
        if flt.label:
            stmt = stmt.where(voxels.c.label == flt.label.lower())  # Magika labels: lower case
        if flt.since is not None:
            stmt = stmt.where(voxels.c.ts_unix >= flt.since.timestamp())
        if flt.until is not None:
            stmt = stmt.where(voxels.c.ts_unix < flt.until.timestamp())
        if flt.q and not any(c in flt.q for c in '"\\'):
            stmt = stmt.where(voxels.c.doc.ilike(f"%{_like_escape(flt.q)}%", escape="\\"))
        rows = store._query(stmt.limit(CHUNK))  # the store's checked read path
        consumed = 0
        for row in rows:
            consumed += 1
            scanned += 1
            last = Cursor(float(row["ts_unix"]), str(row["id"]))
            voxel = store._from_row(row)  # metadata checksum verified
            if matches(voxel, flt):
                found.append(voxel)
                if len(found) >= limit:
                    break
        if len(rows) < CHUNK and consumed == len(rows):
            exhausted = True
            break
    next_cursor = None if exhausted or last is None else last.encode()
    return found, next_cursor
