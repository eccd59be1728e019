"""Verification of stored voxels against their sealed documents (``thunderline voxel verify``).

A voxel passes when its document hashes to the recorded metadata SHA-256, every index column
(``label``, ``source``, ``payload_sha256`` ... the ``dedup_key``) says what the document says,
and **every** copy of its payload -- the inline row and the object-store object, whichever
exist (the classify stage stores every payload as an object, so an inline payload usually has
both) -- hashes to the sealed SHA-256; and its ``voxel_edges`` rows are exactly its sealed
parent ids (``lineage_mismatch`` otherwise); and the extracted text its
``traits["extract"]["text_ref"]`` names is in the object store and hashes to that name
(``text_missing`` otherwise). A failure lists every difference found; nothing
here raises for a mismatch.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import RowMapping

from thunderline import names
from thunderline.errors import ChecksumMismatch, ThunderlineError
from thunderline.obs import metrics
from thunderline.voxel.schema import Voxel
from thunderline.voxel.tables import INLINE, OBJECT

if TYPE_CHECKING:
    from thunderline.voxel.store import VoxelStore

_log = logging.getLogger("thunderline.voxel.store")


@dataclass(frozen=True)
class VoxelCheck:
    """The verdict on one stored voxel: ``ok``, a ``reason`` and what differs (``detail``)."""

    voxel_id: str
    ok: bool
    reason: str
    detail: str


def checksum_mismatch(what: str, expected: str, actual: str) -> ChecksumMismatch:
    """Log and count a checksum mismatch (a ``[security]`` warning); the error to raise."""
    metrics.VOXEL_CHECKSUM_MISMATCH.inc()
    _log.warning(
        "[security] Voxel checksum mismatch for %s: expected=%s, actual=%s", what, expected, actual
    )
    return ChecksumMismatch(f"checksum mismatch for {what}", expected=expected, actual=actual)


def check_voxel(store: VoxelStore, voxel_id: str) -> VoxelCheck:
    """Check one voxel of ``store`` against its sealed document (see the module docstring)."""
    try:
        row = store.row(voxel_id)
        if row is None:
            return VoxelCheck(voxel_id, False, "not_found", f"no voxel {voxel_id}")
        try:
            voxel = store.from_row(row)
        except ChecksumMismatch as exc:
            return VoxelCheck(
                voxel_id,
                False,
                exc.reason,
                f"sealed document: expected {exc.expected[:16]}..., found {exc.actual[:16]}...",
            )
        problems = column_differences(row, voxel)
        reason = "index_mismatch" if problems else "ok"
        edge_problems = edge_differences(store, voxel)
        if edge_problems and not problems:
            reason = "lineage_mismatch"
        problems += edge_problems
        payload_problems, payload_reason = _payload_differences(store, voxel, row)
        problems += payload_problems
        reason = payload_reason or reason
        text_problems, text_reason = _text_differences(store, voxel)
        problems += text_problems
        reason = reason if reason != "ok" else (text_reason or reason)
    except ThunderlineError as exc:
        return VoxelCheck(voxel_id, False, exc.reason, str(exc))
    if problems:
        return VoxelCheck(voxel_id, False, reason, "; ".join(problems))
    return VoxelCheck(voxel_id, True, "ok", voxel.payload_ref)


def check_all(store: VoxelStore) -> Iterator[VoxelCheck]:
    """Every voxel of ``store``, oldest first."""
    for voxel_id in store.iter_ids():
        yield check_voxel(store, voxel_id)


def column_differences(row: RowMapping, voxel: Voxel) -> list[str]:
    """Index columns of ``row`` that do not say what the sealed document says."""
    from thunderline.voxel.store import dedup_key

    expected: dict[str, Any] = {
        "event_id": voxel.event_id,
        "correlation_id": voxel.correlation_id,
        "causation_id": voxel.causation_id,
        "source": names.wire_text(voxel.source),
        "label": voxel.label,
        "payload_sha256": voxel.payload_sha256,
        "payload_size": voxel.payload_size,
        "schema_version": voxel.schema_version,
        "dedup_key": dedup_key(voxel.source, voxel.payload_sha256),
    }
    problems = [
        f"column {column} is {row[column]!r}, sealed {value!r}"
        for column, value in expected.items()
        if row[column] != value
    ]
    if abs(float(row["ts_unix"]) - voxel.ts.timestamp()) > 1e-3:
        problems.append(f"column ts_unix is {row['ts_unix']!r}, sealed {voxel.ts.timestamp()!r}")
    location = row["payload_location"]
    if location not in (INLINE, OBJECT):
        problems.append(f"column payload_location is {location!r}")
    return problems


def edge_differences(store: VoxelStore, voxel: Voxel) -> list[str]:
    """Lineage edge rows that do not say what the sealed parent ids say.

    Both ways: a deleted row and a row the seal does not name are each reported.
    """
    sealed = set(voxel.lineage.parent_voxel_ids)
    stored = set(store.parents(voxel.id))
    missing = [f"lineage edge to sealed parent {p} is missing" for p in sorted(sealed - stored)]
    extra = [f"lineage edge to {p} is not in the sealed parents" for p in sorted(stored - sealed)]
    return missing + extra


def _payload_differences(
    store: VoxelStore, voxel: Voxel, row: RowMapping
) -> tuple[list[str], str | None]:
    """Hash every stored copy of the payload; (what differs, the reason) -- or ([], None)."""
    sha = voxel.payload_sha256
    problems: list[str] = []
    reason: str | None = None
    inline = store.inline_copy(sha)
    if inline is not None:
        actual = hashlib.sha256(inline).hexdigest()
        if actual != sha or len(inline) != voxel.payload_size:
            checksum_mismatch(f"inline payload of voxel {voxel.id}", sha, actual)
            problems.append(f"inline copy hashes to {actual[:16]}..., sealed {sha[:16]}...")
            reason = "checksum_mismatch"
    elif row["payload_location"] == INLINE:
        problems.append("inline copy is missing")
        reason = "payload_missing"
    try:
        store.objects.copy_verified(sha, _Discard())
    except ChecksumMismatch as exc:
        problems.append(f"object copy hashes to {exc.actual[:16]}..., sealed {sha[:16]}...")
        reason = "checksum_mismatch"
    except KeyError:  # PayloadNotFound is a KeyError too
        if row["payload_location"] == OBJECT:
            problems.append(f"object copy {voxel.payload_ref} is missing")
            reason = reason or "payload_missing"
    return problems, reason


def _text_differences(store: VoxelStore, voxel: Voxel) -> tuple[list[str], str | None]:
    """Check the voxel's extracted text: (what differs, the reason), or ([], None).

    The text named by ``traits["extract"]["text_ref"]`` must be in the object store and hash
    to its name.
    """
    from thunderline.voxel.store import text_sha256

    sha = text_sha256(voxel)
    if sha is None:
        return [], None
    try:
        store.objects.copy_verified(sha, _Discard())
    except ChecksumMismatch as exc:
        return [f"extracted text hashes to {exc.actual[:16]}..., sealed {sha[:16]}..."], (
            "checksum_mismatch"
        )
    except KeyError:
        return [f"extracted text sha256:{sha[:16]}... is missing"], "text_missing"
    return [], None


class _Discard:
    """A sink that drops what is written (an object copy is hashed, not kept)."""

    def write(self, data: bytes) -> int:
        return len(data)
