"""How an artifact ended, from the outcome store's records, when messages ran more than once.

At-least-once delivery means a redelivered message can be processed twice: the voxel store's
idempotency key gives the *same* voxel, but the outcome store (keyed by event id) may then
hold two ``voxel`` records of one artifact, or a ``dlq`` record beside a ``voxel`` one. The
final outcome of an artifact (correlation id + artifact key) is its voxel if it has one,
else its newest open (or dismissed: closed by an operator, still how it ended) DLQ record. :func:`expected` says how many artifacts a correlation id
has: one, plus the members of each archive (``voxel.children``).
"""

from __future__ import annotations

from collections.abc import Iterable

from thunderline.outcomes import DISMISSED, OPEN, OutcomeRecord

#: DLQ statuses that end an artifact (a ``replayed`` record waits for its replay's outcome).
FINAL_DLQ = (OPEN, DISMISSED)


def final_outcomes(records: Iterable[OutcomeRecord]) -> dict[tuple[str, str], OutcomeRecord]:
    """One record per (correlation id, artifact): its final outcome.

    That is its voxel, else its newest open or dismissed DLQ record.
    """
    chosen: dict[tuple[str, str], OutcomeRecord] = {}
    for record in sorted(records, key=lambda r: r.id):
        key = (record.correlation_id, record.artifact or f"event:{record.id}")
        current = chosen.get(key)
        if record.kind == "voxel":
            if current is None or current.kind != "voxel":
                chosen[key] = record
        elif record.status in FINAL_DLQ and (current is None or current.kind != "voxel"):
            chosen[key] = record
    return chosen


def expected(records: Iterable[OutcomeRecord]) -> int:
    """Artifacts one correlation id ends with: 1, plus the members of its archives."""
    extra = 0
    for record in records:
        voxel = record.event.data.get("voxel") if record.kind == "voxel" else None
        if isinstance(voxel, dict):
            extra += int(voxel.get("children") or 0)
    return 1 + extra


def settled(records: Iterable[OutcomeRecord]) -> dict[str, list[OutcomeRecord]]:
    """The correlation ids whose every artifact has its final outcome, with those outcomes.

    Archive members count as artifacts too.
    """
    per: dict[str, list[OutcomeRecord]] = {}
    for (cid, _artifact), record in final_outcomes(records).items():
        per.setdefault(cid, []).append(record)
    return {cid: final for cid, final in per.items() if len(final) >= expected(final)}
