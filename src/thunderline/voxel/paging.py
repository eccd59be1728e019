"""Pages of voxels: filters, text search over NLP entities, opaque cursors.

Newest first by ``(ts, id)``. The label and the time range are SQL conditions on indexed
columns; the text search is first narrowed in SQL (``doc`` contains the words) and then matched
exactly against the entities' text; the content group, entity types and the model's top label are matched on the decoded voxel. A page
reads rows in chunks until it has ``limit`` matches (or has scanned :data:`MAX_SCAN` rows), and
its cursor points after the last row *scanned*, so the next page neither repeats nor skips.
A cursor is base64url JSON ``{"ts": float, "id": str}``; anything else is a
:class:`BadCursorError`. :meth:`VoxelStore.page <thunderline.voxel.store.VoxelStore.page>`
runs the query.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from thunderline.voxel.errors import VoxelError
from thunderline.voxel.schema import Voxel
from thunderline.voxel.tables import voxels

#: Rows read per query while a page fills.
CHUNK = 200
#: Most rows one page scans for matches before it returns what it has.
MAX_SCAN = 5000


class BadCursorError(VoxelError):
    """A page cursor that this store did not hand out."""

    reason = "bad_cursor"


@dataclass(frozen=True)
class VoxelFilter:
    """Which voxels a page holds (every field optional)."""

    label: str | None = None
    group: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    entity_type: str | None = None
    model_label: str | None = None

    def matches(self, voxel: Voxel) -> bool:
        """The conditions SQL cannot decide; labels, groups and entity types ignore case."""
        if self.group and (group_of(voxel) or "").casefold() != self.group.casefold():
            return False
        if self.entity_type and self.entity_type.upper() not in entity_labels(voxel):
            return False
        if (
            self.model_label
            and (model_label_of(voxel) or "").casefold() != self.model_label.casefold()
        ):
            return False
        if self.q:
            needle = self.q.casefold()
            if not any(needle in text.casefold() for text in entity_texts(voxel)):
                return False
        return True

    def statement(self, after: Cursor | None) -> Any:
        """The SQL of the next chunk of rows after ``after``, newest first."""
        stmt: Any = select(voxels).order_by(voxels.c.ts_unix.desc(), voxels.c.id.desc())
        if after is not None:
            stmt = stmt.where(
                or_(
                    voxels.c.ts_unix < after.ts,
                    and_(voxels.c.ts_unix == after.ts, voxels.c.id < after.id),
                )
            )
        if self.label:
            stmt = stmt.where(voxels.c.label == self.label.lower())  # Magika labels: lower case
        if self.since is not None:
            stmt = stmt.where(voxels.c.ts_unix >= self.since.timestamp())
        if self.until is not None:
            stmt = stmt.where(voxels.c.ts_unix < self.until.timestamp())
        if self.q and not any(c in self.q for c in '"\\'):
            stmt = stmt.where(voxels.c.doc.ilike(f"%{_like_escape(self.q)}%", escape="\\"))
        return stmt.limit(CHUNK)


@dataclass(frozen=True)
class Cursor:
    """The position after the last row a page scanned."""

    ts: float
    id: str

    def encode(self) -> str:
        """The opaque text handed to clients."""
        raw = json.dumps({"ts": self.ts, "id": self.id}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor of :meth:`encode`'s text; :class:`BadCursorError` for anything else."""
        try:
            padded = text + "=" * (-len(text) % 4)
            raw = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            ts, vid = raw["ts"], raw["id"]
            if not isinstance(ts, int | float) or not isinstance(vid, str) or len(vid) > 64:
                raise ValueError("wrong field types")
            return cls(float(ts), vid)
        except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error) as exc:
            raise BadCursorError(
                "the cursor is not one this API returned (use `next_cursor`)"
            ) from exc


def entity_texts(voxel: Voxel) -> list[str]:
    """The text of every NLP entity of the voxel."""
    nlp = voxel.traits.get("nlp")
    if not isinstance(nlp, dict):
        return []
    return [str(e.get("text", "")) for e in nlp.get("entities", []) if isinstance(e, dict)]


def group_of(voxel: Voxel) -> str | None:
    """The voxel's Magika content group, if classified."""
    classification = voxel.traits.get("classification")
    if isinstance(classification, dict) and classification.get("group") is not None:
        return str(classification["group"])
    return None


def entity_labels(voxel: Voxel) -> set[str]:
    """The labels (upper case) of every NLP entity of the voxel."""
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


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
