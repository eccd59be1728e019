"""Export: one row per matching voxel, streamed in constant memory (JSON Lines, CSV, Parquet).

Rows are produced a page at a time (:meth:`Searcher.iter_matches`: keyset paging on the
index, 500 ids per page) and each page's voxels are read, verified and turned into rows before
the next page is read, so memory does not grow with the number of rows. Parquet
(:func:`encode_parquet`, ``pyarrow``) is written a row group at a time into a sink that hands
its bytes on after each group, so it streams too: typed columns (timestamp, int64, lists of
parent ids, entities as ``list<struct<text, type>>``, model results as
``list<struct<model, label, score>>``), extraction metadata as a JSON string, zstd-compressed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, Final, Literal

from sqlalchemy import select

from thunderline import names
from thunderline.search.engine import Searcher
from thunderline.voxel.schema import Voxel
from thunderline.voxel.store import VoxelStore
from thunderline.voxel.tables import voxel_edges
from thunderline.voxel.tables import voxels as voxels_table

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: Final = ("jsonl", "csv", "parquet")
#: Rows per Parquet row group: what the writer holds in memory at once.
PARQUET_ROW_GROUP: Final = 2000
COLUMNS: Final = (
    "id",
    "name",
    "source",
    "ts",
    "label",
    "group",
    "mime",
    "lang",
    "kind",
    "size",
    "payload_sha256",
    "parent_ids",
    "entities",
    "models",
    "metadata",
    "text",
)


def row_of(voxel: Voxel, parents: list[str], text: str | None) -> dict[str, Any]:
    """The export row of one voxel."""
    traits = voxel.traits
    artifact = traits.get("artifact") or {}
    classification = traits.get("classification") or {}
    nlp = traits.get("nlp") or {}
    inference = traits.get("inference") or {}
    extract = traits.get("extract") or {}
    top = (inference.get("top_k") or [{}])[0] if isinstance(inference, dict) else {}
    models = (
        {str(inference["model"]): {"label": top.get("label"), "score": top.get("score")}}
        if isinstance(inference, dict) and inference.get("model")
        else {}
    )
    return {
        "id": voxel.id,
        "name": artifact.get("name"),
        "source": voxel.source,
        "ts": voxel.ts.isoformat(),
        "label": voxel.label,
        "group": classification.get("group"),
        "mime": classification.get("mime"),
        "lang": nlp.get("lang"),
        "kind": models.get("text_classifier", {}).get("label"),
        "size": voxel.payload_size,
        "payload_sha256": voxel.payload_sha256,
        "parent_ids": parents,
        "entities": [
            {"text": e.get("text"), "type": e.get("label")}
            for e in nlp.get("entities") or ()
            if isinstance(e, dict)
        ],
        "models": models,
        "metadata": extract.get("metadata") or {},
        "text": text,
    }


def iter_rows(
    store: VoxelStore, query: str = "", *, with_text: bool = False, page: int = 500
) -> Iterator[dict[str, Any]]:
    """Every voxel matching ``query`` as an export row (verified reads, page by page).

    Raises:
        QuerySyntaxError: the query is malformed (before anything is produced).
    """
    searcher = Searcher(store.engine)
    for ids in searcher.iter_matches(query, batch=page):
        with store.engine.connect() as conn:
            rows = {
                str(r["id"]): r
                for r in conn.execute(
                    select(voxels_table).where(voxels_table.c.id.in_(ids))
                ).mappings()
            }
            parents: dict[str, list[str]] = {}
            for child, parent in conn.execute(
                select(voxel_edges.c.child_id, voxel_edges.c.parent_id).where(
                    voxel_edges.c.child_id.in_(ids)
                )
            ):
                parents.setdefault(str(child), []).append(str(parent))
        for voxel_id in ids:
            if voxel_id not in rows:
                continue  # deleted since the page was read
            voxel = store.from_row(rows[voxel_id])
            text = store.read_text(voxel) if with_text else None
            yield row_of(voxel, sorted(parents.get(voxel_id, [])), text)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return names.dumps(value, sort_keys=True)
    if isinstance(value, str):
        return names.wire_text(value)
    return "" if value is None else value


def encode(rows: Iterator[dict[str, Any]], fmt: Format) -> Iterator[str]:
    """The rows as text chunks of the format (a header first for CSV)."""
    if fmt == "jsonl":
        for row in rows:
            yield names.dumps(row) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


def check_format(fmt: str) -> Format:
    """``fmt`` if it is an export format (ValueError otherwise)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: {', '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


class _Drain:
    """A write-only file for pyarrow whose bytes are taken out as they come (streaming)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def parquet_schema() -> Any:
    """The Parquet schema of an export row."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("name", pa.string()),
            ("source", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("label", pa.string()),
            ("group", pa.string()),
            ("mime", pa.string()),
            ("lang", pa.string()),
            ("kind", pa.string()),
            ("size", pa.int64()),
            ("payload_sha256", pa.string()),
            ("parent_ids", pa.list_(pa.string())),
            ("entities", pa.list_(pa.struct([("text", pa.string()), ("type", pa.string())]))),
            (
                "models",
                pa.list_(
                    pa.struct(
                        [("model", pa.string()), ("label", pa.string()), ("score", pa.float64())]
                    )
                ),
            ),
            ("metadata", pa.string()),
            ("text", pa.string()),
        ]
    )


def _parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    def clean(value: Any) -> Any:
        return names.wire_text(value) if isinstance(value, str) else value

    return {
        **{k: clean(row[k]) for k in ("id", "name", "source", "label", "group", "mime")},
        **{k: clean(row[k]) for k in ("lang", "kind", "payload_sha256", "text")},
        "ts": datetime.fromisoformat(row["ts"]),
        "size": row["size"],
        "parent_ids": row["parent_ids"],
        "entities": [{"text": clean(e["text"]), "type": e["type"]} for e in row["entities"]],
        "models": [
            {"model": m, "label": clean(r.get("label")), "score": r.get("score")}
            for m, r in sorted(row["models"].items())
        ],
        "metadata": names.dumps(row["metadata"], sort_keys=True),
    }


def encode_parquet(
    rows: Iterator[dict[str, Any]], row_group: int = PARQUET_ROW_GROUP
) -> Iterator[bytes]:
    """The rows as a Parquet file (zstd), in byte chunks: one row group at a time.

    A group is ``row_group`` rows, so memory holds one group whatever the number of rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    sink = _Drain()
    with pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd") as writer:
        group: list[dict[str, Any]] = []
        for row in rows:
            group.append(_parquet_row(row))
            if len(group) >= row_group:
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
                group = []
                yield sink.take()
        if group or not sink.position:
            writer.write_table(pa.Table.from_pylist(group, schema=schema))
    yield sink.take()
