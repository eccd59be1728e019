"""The store protocols: what the API, the CLI and the stages may use of the two databases.

:class:`VoxelStorage` (voxels, their lineage and verified payloads) and
:class:`OutcomeStorage` (every terminal outcome: voxels made, dead letters with their status).
One class implements each over SQLite and PostgreSQL -- :class:`~thunderline.voxel.store.VoxelStore`
and :class:`~thunderline.outcomes.OutcomeStore` -- and the contract suites in
``tests/integration/contracts`` run the same tests over every database (``VOXEL_BACKENDS``)
through these protocols; a new backend is one more entry there. Nothing outside a store
reaches below these methods (no SQL, no private method).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from thunderline.events import CloudEvent
    from thunderline.outcomes import DlqGroup, OutcomeRecord
    from thunderline.search.engine import SearchResult
    from thunderline.voxel.lifecycle import Deletion
    from thunderline.voxel.lineage import Edge
    from thunderline.voxel.paging import VoxelFilter
    from thunderline.voxel.schema import Voxel
    from thunderline.voxel.store import PutResult
    from thunderline.voxel.verify import VoxelCheck


@runtime_checkable
class VoxelStorage(Protocol):
    """Voxels, lineage and payloads: idempotent writes, reads verified against checksums."""

    @property
    def url(self) -> str:
        """Where the voxels are (password hidden)."""

    def ping(self) -> None:
        """Round-trip to the database; :class:`~thunderline.errors.BackendError` if down."""

    def put(self, voxel: Voxel, payload: bytes | None = None) -> PutResult:
        """Store one voxel (or find the one with the same source and bytes)."""

    def put_many(self, items: Sequence[tuple[Voxel, bytes | None]]) -> list[PutResult]:
        """Store several voxels in one transaction (all or none)."""

    def add_parents(self, voxel_id: str, parent_ids: Iterable[str]) -> None:
        """Add lineage edges; refuses a cycle or an unknown parent."""

    def get(self, voxel_id: str) -> Voxel:
        """The voxel with this id or unique prefix (``VoxelNotFoundError`` otherwise)."""

    def resolve_id(self, id_or_prefix: str) -> str:
        """The full id of a unique prefix."""

    def find(self, source: str, payload_sha256: str) -> Voxel | None:
        """The voxel of these bytes from this source, if any."""

    def find_by_event(self, event_id: str) -> Voxel | None:
        """The voxel packaged from this event, if any."""

    def query(
        self, *, label: str | None = None, since: datetime | None = None, limit: int = 50
    ) -> list[Voxel]:
        """Newest voxels first, optionally of one label and/or since a time."""

    def page(
        self, flt: VoxelFilter, cursor: str | None = None, *, limit: int = 50
    ) -> tuple[list[Voxel], str | None]:
        """One page of matching voxels, newest first, and the next page's cursor."""

    def count(self) -> int:
        """How many voxels are stored."""

    def iter_ids(self, batch: int = 500) -> Iterator[str]:
        """Every voxel id, oldest first."""

    def parents(self, voxel_id: str) -> list[str]:
        """The direct parents of a voxel."""

    def ancestors(self, voxel_id: str) -> list[Edge]:
        """Every lineage edge above a voxel."""

    def descendants(self, voxel_id: str) -> list[Edge]:
        """Every lineage edge below a voxel."""

    def ancestor_ids(self, voxel_id: str) -> set[str]:
        """The ids of every ancestor of a voxel."""

    def read_payload(self, voxel: Voxel | str) -> bytes:
        """The payload bytes, verified against the voxel's SHA-256."""

    def copy_payload(self, voxel: Voxel | str, dest: BinaryIO) -> int:
        """Write the verified payload to ``dest``; its size."""

    def search(
        self,
        query: str,
        *,
        order: Literal["relevance", "time"] = "relevance",
        limit: int = 20,
        cursor: str | None = None,
        facets: bool = False,
    ) -> SearchResult:
        """One page of search hits for ``query`` (``QuerySyntaxError`` if malformed)."""

    def similar(
        self,
        voxel_id: str,
        query: str = "",
        *,
        limit: int = 20,
        cursor: str | None = None,
        embed_missing: bool = False,
    ) -> SearchResult:
        """The voxels most like ``voxel_id`` (sentence embeddings), filtered by ``query``."""

    def export_rows(self, query: str = "", *, with_text: bool = False) -> Iterator[dict[str, Any]]:
        """Every voxel matching ``query`` as an export row, verified."""

    def delete(
        self,
        voxel_ids: Sequence[str],
        *,
        actor: str,
        reason: str,
        with_descendants: bool = False,
    ) -> list[Deletion]:
        """Delete voxels (audited; ``HasDescendantsError`` unless ``with_descendants``)."""

    def read_text(self, voxel: Voxel | str) -> str | None:
        """The extracted text stored for the voxel, SHA-256 verified (None: it has none)."""

    def verify(self, voxel_id: str) -> VoxelCheck:
        """Check one voxel against its sealed document (never raises for a mismatch)."""

    def verify_all(self) -> Iterator[VoxelCheck]:
        """Check every voxel."""

    def close(self) -> None:
        """Release the connections."""


@runtime_checkable
class OutcomeStorage(Protocol):
    """Terminal outcomes of every ingest: voxels made and dead letters, idempotent by id."""

    def record(self, event: CloudEvent) -> None:
        """Record one terminal event."""

    def record_many(self, events: Sequence[CloudEvent]) -> None:
        """Record terminal events (others are ignored); a voxel resolves replayed DLQ records."""

    def mark_replayed(self, record_id: str, replay_event_id: str) -> bool:
        """Claim an open DLQ record for a replay; False if it was not open."""

    def reopen(self, record_id: str) -> None:
        """Undo a claim whose replay could not be sent."""

    def by_correlation(self, correlation_id: str) -> list[OutcomeRecord]:
        """Every record of one ingest, oldest first."""

    def resolve_correlation(self, ref: str) -> str | None:
        """A full correlation id from a short id or a unique part (None: nothing matches)."""

    def by_correlations(self, correlation_ids: Sequence[str]) -> list[OutcomeRecord]:
        """Every record of these ingests, oldest first."""

    def dlq(
        self,
        status: str | None = "open",
        *,
        limit: int = 50,
        cursor: str | None = None,
        group: str | None = None,
    ) -> list[OutcomeRecord]:
        """DLQ records of one status (None: all), oldest first, after ``cursor``.

        Only one group (its full key) if given.
        """

    def dlq_get(self, record_id: str) -> OutcomeRecord | None:
        """One DLQ record by full id, short id or a unique part (None: nothing matches)."""

    def resolve_group(self, ref: str) -> str | None:
        """A DLQ group's full key from its id (a unique start of the key)."""

    def dlq_groups(
        self, status: str | None = "open", *, limit: int = 100, offset: int = 0
    ) -> tuple[list[DlqGroup], int]:
        """DLQ records grouped by (stage, reason, artifact), newest group first.

        Returns a page of groups and the number of groups.
        """

    def dismiss(self, record_ids: Sequence[str], *, by: str, note: str) -> list[str]:
        """Close open DLQ records without a replay (who, when, why); the ids dismissed."""

    def purge(self, older_than_unix: float, *, dry_run: bool = False) -> dict[str, int]:
        """Delete closed DLQ records created before the cut-off; how many per status."""

    def counts(self) -> dict[str, int]:
        """Records per status."""

    def close(self) -> None:
        """Release the connections."""
